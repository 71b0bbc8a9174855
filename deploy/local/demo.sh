#!/usr/bin/env bash
# The main job on the local stack (called by `deploy/local/stack demo` with the
# stack up and its settings exported). It walks complaints through the parts
# that exist so far: schema, topics, keys, registry, tokens, ingest, Kafka,
# loader, ClickHouse, scoring, and the offender report an ESP receives.
# Usage: demo.sh BIN_DIR WORK_DIR   (BIN_DIR holds ricochet and its services)
set -euo pipefail
bin=$1
work=$2
ricochet=$bin/ricochet
rm -rf "$work"
mkdir -p "$work"
cd "$work"
step() { printf '\n== %s\n' "$*"; }

query() { curl -fsS "$RICOCHET_CLICKHOUSE_URL/?database=ricochet" --data-binary "$1"; }

step "ClickHouse schema ($RICOCHET_CLICKHOUSE_URL); the demo starts from an empty database"
# Every node of a cluster (RICOCHET_CLICKHOUSE_NODES, set by a two-shard stack), else the one server.
for node in $(echo "${RICOCHET_CLICKHOUSE_NODES:-$RICOCHET_CLICKHOUSE_URL}" | tr ',' ' '); do
  curl -fsS "$node/" --data-binary "DROP DATABASE IF EXISTS ricochet SYNC"
done
"$ricochet" db migrate

step "Kafka topics ($RICOCHET_KAFKA_BROKERS)"
"$ricochet" kafka init

step "An ESP and a mailbox provider generate keys and register"
"$ricochet" keys new --alg eddsa --kid esp-demo-2026-11 --out esp.jwk >esp.jwks
"$ricochet" keys new --alg es256 --kid mail-demo-2026-11 --out provider.jwk >provider.jwks
export RICOCHET_REGISTRY=$work/registry.toml
"$ricochet" registry add-esp --id esp-demo.example --name "Demo ESP" --jwks esp.jwks
"$ricochet" registry add-provider --id mail-demo.example --name "Demo Mail" \
  --domain mail-demo.example --jwks provider.jwks
"$ricochet" registry check

step "The provider publishes its recipient policy: no marketing mail to mail-demo.example"
export RICOCHET_POLICY_DIR=$work/policies
cat >mail-demo.example.json <<JSON
{"version": 1, "domain": "mail-demo.example", "effective_from": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "natures": {"refuse": ["marketing"]}, "unsigned": "accept", "action": "reject"}
JSON
"$ricochet" policy publish --provider mail-demo.example mail-demo.example.json

# start_service NAME READY_URL: runs $bin/ricochet-NAME in its own session
# (pid file beside the stack's, so `stack down` stops it) and waits until ready.
start_service() {
  local name=$1 ready=$2
  setsid "$bin/ricochet-$name" >>"$RICOCHET_LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RICOCHET_RUN_DIR/$name.pid"
  for _ in $(seq 1 300); do
    curl -fsS "$ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -20 "$RICOCHET_LOG_DIR/$name.log"
  echo "$name did not become ready ($ready)" >&2
  exit 1
}

step "Ingest and the loader start ($RICOCHET_INGEST_URL, http://$RICOCHET_LOADER_LISTEN)"
start_service ingest "$RICOCHET_INGEST_URL/readyz"
start_service loader "http://$RICOCHET_LOADER_LISTEN/readyz"
echo "both ready"
echo "an ESP asks before sending (ingest serves $RICOCHET_INGEST_URL/.well-known/ricochet-policy/mail-demo.example):"
"$ricochet" policy check --domain mail-demo.example --nature newsletter
"$ricochet" policy check --domain mail-demo.example --nature marketing || true

since_ms=$(date +%s%3N) # this run's complaints only, when the stack holds earlier runs

step "The ESP mints a token for each message it sends"
token=$("$ricochet" token mint --key esp.jwk --iss esp-demo.example --sub shop-42 \
  --nature newsletter --campaign black-friday --recipient carol@mail-demo.example)
printf 'Complaint-Token: %s\n(%d characters)\n' "$token" "${#token}"
for i in 1 2 3; do
  "$ricochet" token mint --key esp.jwk --iss esp-demo.example --sub shop-7 \
    --nature transactional --recipient "user$i@mail-demo.example"
done >more-tokens.txt

step "The provider checks the token when Carol reports the message"
"$ricochet" token verify "$token"

step "The provider submits Carol's complaint, proving she is the recipient"
"$ricochet" complaint submit --key provider.jwk --provider mail-demo.example \
  --recipient carol@mail-demo.example "$token"

step "More complaints, one forged (a character changed) and one repeated"
forged="${token%?}"
[ "${token: -1}" = A ] && forged="${forged}B" || forged="${forged}A"
{ cat more-tokens.txt; echo "$forged"; head -1 more-tokens.txt; } \
  | "$ricochet" complaint submit --key provider.jwk --provider mail-demo.example --code misrepresented - || true

step "The loader writes them to ClickHouse, each token once"
this_run="esp = 'esp-demo.example' AND received_at >= fromUnixTimestamp64Milli($since_ms)"
expected=$(( $(wc -l <more-tokens.txt) + 1 ))
for _ in $(seq 1 150); do
  [ "$(query "SELECT uniqExact(jti) FROM complaints WHERE $this_run")" -ge "$expected" ] && break
  sleep 0.2
done
query "SELECT sender, code, uniqExact(jti) AS complaints FROM complaints WHERE $this_run GROUP BY sender, code ORDER BY sender FORMAT PrettyCompactMonoBlock"

step "Scoring starts (ESP API $RICOCHET_ESP_API_URL, signed with Ricochet's own key)"
"$ricochet" keys new --kid ricochet-demo-2026-11 --out ricochet.jwk >ricochet.jwks
export RICOCHET_SIGNING_KEY=$work/ricochet.jwk RICOCHET_SCORING_INTERVAL_SECS=1
start_service scoring "$RICOCHET_ESP_API_URL/.well-known/jwks.json"
echo "ready"

step "A day of mail: Demo Mail reports deliveries, and its users complain about shop-7"
"$ricochet" delivery submit --key provider.jwk --provider mail-demo.example \
  --esp esp-demo.example --sender shop-7 --delivered 2000
"$ricochet" delivery submit --key provider.jwk --provider mail-demo.example \
  --esp esp-demo.example --sender shop-42 --delivered 2000
for i in $(seq 1 40); do
  "$ricochet" token mint --key esp.jwk --iss esp-demo.example --sub shop-7 \
    --nature transactional --recipient "victim$i@mail-demo.example"
done >shop-7-tokens.txt
"$ricochet" complaint submit --key provider.jwk --provider mail-demo.example \
  --code misrepresented - <shop-7-tokens.txt | tail -1

step "The offender report ESP Demo receives (signature verified against Ricochet's JWKS)"
for _ in $(seq 1 100); do
  "$ricochet" report offenders --key esp.jwk --esp esp-demo.example --format csv \
    --ricochet-jwks ricochet.jwks | grep -q shop-7 && break
  sleep 0.3
done
"$ricochet" report offenders --key esp.jwk --esp esp-demo.example --ricochet-jwks ricochet.jwks
"$ricochet" audit verify --esp esp-demo.example

step "What Demo Mail's MTA reads back: everything at throttle or above, and one sender's standing with Demo Mail's own complaints"
for _ in $(seq 1 100); do # the list is rebuilt as the run that wrote the report ends
  "$ricochet" reputation list --key provider.jwk --provider mail-demo.example \
    --ricochet-jwks ricochet.jwks | grep -q shop-7 && break
  sleep 0.3
done
"$ricochet" reputation list --key provider.jwk --provider mail-demo.example --ricochet-jwks ricochet.jwks
"$ricochet" reputation lookup --key provider.jwk --provider mail-demo.example --ricochet-jwks ricochet.jwks \
  --esp esp-demo.example --sender shop-7

step "A simulated world: 3 providers, 4 ESPs, 1,500 senders, two spammers renaming themselves, an attacker and a forger, 24 hours in about a minute"
"$ricochet" simulate --keys-dir sim-keys ${RICOCHET_SIMULATE_ARGS:-}
"$ricochet" audit verify --esp esp-alpha.example

step "Where to look"
cat <<TXT
Ingest:      $RICOCHET_INGEST_URL/metrics  (running; API in schemas/openapi/ingest.json)
Loader:      http://$RICOCHET_LOADER_LISTEN/metrics  (running)
ESP API:     $RICOCHET_ESP_API_URL/v1/offenders, /v1/complaints (the feed)  (running; ESP bearer auth, signed responses)
Prometheus:  $RICOCHET_PROMETHEUS_URL/targets  (scrapes ingest, the loader and scoring; alert rules in deploy/prometheus)
ClickHouse:  $RICOCHET_CLICKHOUSE_URL/play  (database ricochet: complaints, deliveries)
Kafka:       $RICOCHET_KAFKA_BROKERS  topics complaints.v1, deliveries.v1, penalties.v1, feedback.v1
Dashboards:  dashboards/*.json for Grafana (provisioning: deploy/grafana); check their queries here with
             ricochet dashboards check --esp esp-alpha.example --sender <a sender> --rules deploy/prometheus/ricochet-alerts.yml
Files:       $work (keys, registry.toml)
Stop:        deploy/local/stack down
TXT
