#!/usr/bin/env bash
# The main job on the local stack (called by `deploy/local/stack demo` with the
# stack up and its settings exported). Today it walks one complaint token
# through the parts that exist: schema, topics, keys, registry, mint, verify.
# Usage: demo.sh RICOCHET_BINARY WORK_DIR
set -euo pipefail
ricochet=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work"
step() { printf '\n== %s\n' "$*"; }

step "ClickHouse schema ($RICOCHET_CLICKHOUSE_URL)"
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

step "The ESP mints a token for one message"
token=$("$ricochet" token mint --key esp.jwk --iss esp-demo.example --sub shop-42 \
  --nature newsletter --campaign black-friday --recipient carol@mail-demo.example)
printf 'Complaint-Token: %s\n(%d characters)\n' "$token" "${#token}"

step "The provider verifies it when Carol reports the message"
"$ricochet" token verify "$token"

step "A forged copy (one character changed) is refused with its reason"
forged="${token%?}"
[ "${token: -1}" = A ] && forged="${forged}B" || forged="${forged}A"
"$ricochet" token verify "$forged" || true

step "Where to look"
cat <<TXT
Prometheus:  $RICOCHET_PROMETHEUS_URL  (targets: $RICOCHET_PROMETHEUS_URL/targets)
ClickHouse:  $RICOCHET_CLICKHOUSE_URL/play  (database ricochet: complaints, deliveries)
Dashboards:  dashboards/ (Grafana JSON; the services that feed them arrive with the next issues)
Files:       $work (keys, registry.toml)
Stop:        deploy/local/stack down
TXT
