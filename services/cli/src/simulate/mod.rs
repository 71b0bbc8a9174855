//! `ricochet simulate`: a simulated world driving the real services over
//! HTTP. ESPs sign a token per message, providers report delivered counts
//! and their users' complaints (plus an attacker's and a forger's), scoring
//! decides; at the end each ESP pulls its signed offender report, and the
//! outcome is compared with the ground truth.
//!
//! Time is compressed: the last `--hours` hours are replayed, each in
//! 3600/`--speed` real seconds, with timestamps in the hour they stand for.

mod feed;
mod levels;
mod provider_view;
mod world;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ricochet_harness::ingest::IngestClient;
use ricochet_harness::participants;
use ricochet_kafka::ComplaintCode;
use ricochet_registry::ParticipantKind;
use ricochet_scoring::Policy;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, JwkSet, Nature, SigningKey, TokenRequest, VerifyingKey};
use serde_json::{json, Value};

use crate::keys::write_private;
use crate::report::{fetch_offenders, print_table};
use world::{Behaviour, World, ATTACKER_ACCOUNTS, ATTACK_HOURS, ATTACK_PER_HOUR, ESPS, PROVIDERS};

/// Settings of a simulation.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Ordinary senders in the world (spread over 3 ESPs; the renaming
    /// spammers and the fourth ESP's senders come on top).
    #[arg(long, default_value_t = 1500)]
    senders: usize,
    /// Simulated hours, ending now.
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// Time compression: simulated seconds per real second (1440: a day in a minute).
    #[arg(long, default_value_t = 1440.0)]
    speed: f64,
    /// Seed of the world and its traffic.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Ingest base URL.
    #[arg(
        long,
        env = "RICOCHET_INGEST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    ingest_url: String,
    /// ESP API base URL.
    #[arg(
        long,
        env = "RICOCHET_ESP_API_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    esp_api_url: String,
    /// The registry file the running services read; the world's providers
    /// and ESPs are added to it.
    #[arg(long, env = "RICOCHET_REGISTRY")]
    registry: PathBuf,
    /// Folder for the participants' private keys.
    #[arg(long, default_value = "simulation-keys")]
    keys_dir: PathBuf,
    /// Most seconds to wait at the end for scoring to settle.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
    /// Prometheus URL, for the pointers printed at the end.
    #[arg(long, env = "RICOCHET_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
}

/// Forged complaints a fraudster files per simulated hour (a real token with
/// its signature altered): all must be refused.
const FORGED_PER_HOUR: usize = 3;
/// Rows of each ESP's offender report printed at the end.
const SHOWN: usize = 12;
/// Complaints per request.
const BATCH: usize = 500;

struct Participants {
    esps: Vec<SigningKey>,
    providers: Vec<SigningKey>,
}

fn register(registry: &Path, keys_dir: &Path) -> Result<Participants> {
    std::fs::create_dir_all(keys_dir)?;
    // Each key is written before its participant is added: a keys directory
    // from an earlier run stops the simulation before the registry changes.
    let enrol = |kind, id: &str, alg, kid: String, domains: &[&str]| -> Result<SigningKey> {
        let key = SigningKey::generate(alg, kid)?;
        write_private(&keys_dir.join(format!("{id}.jwk")), &key.private_jwk())
            .with_context(|| format!("writing {id}'s key (use an empty --keys-dir)"))?;
        participants::add(registry, kind, id, &key, domains)
            .context("use a registry without the simulated participants")?;
        Ok(key)
    };
    let mut esps = vec![];
    for (i, esp) in ESPS.iter().enumerate() {
        let kid = format!("{esp}-sim-{i}");
        esps.push(enrol(
            ParticipantKind::Esp,
            esp,
            Algorithm::EdDSA,
            kid,
            &[],
        )?);
    }
    let mut providers = vec![];
    for p in &PROVIDERS {
        let (kind, kid) = (ParticipantKind::Provider, format!("{}-sim", p.id));
        providers.push(enrol(kind, p.id, Algorithm::ES256, kid, &[p.domain])?);
    }
    Ok(Participants { esps, providers })
}

fn rfc3339(unix: i64) -> String {
    ricochet_harness::clock::rfc3339_ms(unix * 1000).expect("a simulated time in range")
}

/// Tallies of what was submitted and what ingest answered.
#[derive(Default)]
struct Tally {
    complaints: u64,
    accepted: u64,
    rejected_legit: BTreeMap<String, u64>,
    forged: u64,
    forged_rejected: u64,
    deliveries: u64,
    /// The attacker's complaints ingest accepted.
    attack_accepted: u64,
    /// What each ESP's book truly drew.
    truth: levels::Truth,
}

/// Posts `items` as `route` ("complaints" or "deliveries"), resending
/// while ingest pushes back; returns the verdicts in order (None: accepted,
/// Some(reason)).
async fn submit(
    client: &IngestClient,
    route: &str,
    items: Vec<Value>,
) -> Result<Vec<Option<String>>> {
    let path = format!("/v1/{route}");
    let body = json!({ route: items });
    let patience = Duration::from_secs(30);
    let answer = client.post_json_retrying(&path, &body, patience).await?;
    let v = answer.ok().with_context(|| format!("POST {path}"))?;
    let results = v["results"].as_array().cloned().unwrap_or_default();
    Ok(results
        .iter()
        .map(|r| match r["verdict"].as_str() {
            Some("accepted") => None,
            _ => Some(r["reason"].as_str().unwrap_or("unknown").to_string()),
        })
        .collect())
}

/// Waits until ingest and the ESP API know the new participants (they reload
/// the registry on their own).
async fn wait_registered(http: &reqwest::Client, a: &SimulateArgs, p: &Participants) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let provider = format!(
            "Bearer {}",
            mint_bearer(
                &p.providers[0],
                PROVIDERS[0].id,
                "ricochet-ingest",
                unix_now(),
                120
            )?
        );
        let esp = mint_bearer(&p.esps[0], ESPS[0], "ricochet-esp-api", unix_now(), 120)?;
        let ingest_ok = http
            .post(format!("{}/v1/deliveries", a.ingest_url))
            .header("authorization", &provider)
            .json(&json!({"deliveries": []}))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() != 401 && r.status().as_u16() != 403);
        let api_ok = http
            .get(format!("{}/v1/offenders?since=0&limit=1", a.esp_api_url))
            .bearer_auth(esp)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ingest_ok && api_ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("ingest or the ESP API did not pick up the simulated participants within 30 s (is --registry the file they read?)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// First tier change seen per sender: (simulated hour it was seen after, tier).
type Seen = HashMap<String, (u32, String)>;

/// What the ESPs have been told so far.
struct Reports {
    /// Per ESP: the cursor after the last item read.
    cursors: Vec<u64>,
    /// Per ESP: every item read, in order.
    items: Vec<Vec<Value>>,
    /// First change per sender.
    seen: Seen,
    /// First change per ESP or campaign.
    groups: levels::GroupsSeen,
}

impl Reports {
    fn new() -> Self {
        Reports {
            cursors: vec![0; ESPS.len()],
            items: vec![vec![]; ESPS.len()],
            seen: Seen::new(),
            groups: levels::GroupsSeen::new(),
        }
    }

    /// Pulls every ESP's new offender items (signatures verified); returns how many.
    async fn poll(
        &mut self,
        http: &reqwest::Client,
        api: &str,
        p: &Participants,
        keys: &BTreeMap<String, VerifyingKey>,
        hour: u32,
    ) -> Result<usize> {
        let mut new = 0;
        for (i, esp) in ESPS.iter().enumerate() {
            let (page, next) =
                fetch_offenders(http, api, &p.esps[i], esp, self.cursors[i], keys).await?;
            self.cursors[i] = next;
            levels::record(&mut self.groups, i, &page, hour);
            for item in page.iter().filter(|i| i["level"] == "sender") {
                let sender = item["sender"].as_str().unwrap_or("").to_string();
                let tier = item["to_tier"].as_str().unwrap_or("").to_string();
                self.seen.entry(sender).or_insert((hour, tier));
            }
            new += page.len();
            self.items[i].extend(page);
        }
        Ok(new)
    }
}

/// Runs the simulation.
pub async fn run(a: SimulateArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        a.speed > 0.0 && a.hours >= 2,
        "--speed must be positive and --hours at least 2"
    );
    let world = world::build(a.senders, a.hours, a.seed);
    let count = |b: Behaviour| world.senders.iter().filter(|s| s.behaviour == b).count();
    println!(
        "World: {} providers, {} ESPs, {} senders ({} good, {} spammy, {} misrepresenting, {} phishing, 1 bombed by an attacker), {} simulated hours at {}x",
        PROVIDERS.len(), ESPS.len(), world.senders.len(), count(Behaviour::Good), count(Behaviour::Spammy),
        count(Behaviour::Misrepresenting), count(Behaviour::Phishing), a.hours, a.speed
    );
    let participants = register(&a.registry, &a.keys_dir)?;
    let http = reqwest::Client::new();
    wait_registered(&http, &a, &participants).await?;
    let jwks: Value = http
        .get(format!("{}/.well-known/jwks.json", a.esp_api_url))
        .send()
        .await?
        .json()
        .await?;
    let ricochet_keys = JwkSet::from_json(&jwks.to_string())?.verifying_keys()?;
    let mut reports = Reports::new();

    let now = unix_now();
    let first_slot = now - now % 3600 - i64::from(a.hours - 1) * 3600;
    let started = Instant::now();
    let bar = ProgressBar::new(u64::from(a.hours));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] hour {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let clients = PROVIDERS
        .iter()
        .zip(&participants.providers)
        .map(|(p, key)| {
            let key = SigningKey::from_jwk(&key.private_jwk())?;
            Ok(IngestClient::new(&a.ingest_url, p.id, key))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tally = Tally::default();
    for h in 0..a.hours {
        let slot = first_slot + i64::from(h) * 3600;
        let traffic = world::hour(&world, h, a.seed);
        // Deliveries: each provider reports its own counts for the hour.
        for (pi, client) in clients.iter().enumerate() {
            let rows: Vec<Value> = traffic
                .delivered
                .iter()
                .filter(|(_, prov, _)| *prov == pi)
                .map(|(s, _, d)| {
                    let sender = &world.senders[*s];
                    let mut row = json!({"esp": ESPS[sender.esp], "sender": sender.id, "campaign": sender.campaign_in(h),
                                         "hour": rfc3339(slot), "delivered": d});
                    if let Some(dom) = sender.from_domain {
                        row["from_domain"] = json!(dom);
                    }
                    row
                })
                .collect();
            for chunk in rows.chunks(1000) {
                let verdicts = submit(client, "deliveries", chunk.to_vec()).await?;
                if let Some(reason) = verdicts.iter().flatten().next() {
                    bail!("a delivery count was refused: {reason}");
                }
                tally.deliveries += chunk.len() as u64;
            }
        }
        let policy = Policy::default();
        for (s, _, d) in &traffic.delivered {
            tally.truth.delivered(world.senders[*s].esp, *d);
        }
        for c in traffic.complaints.iter().skip(FORGED_PER_HOUR) {
            if !c.attack {
                let esp = world.senders[c.sender].esp;
                tally.truth.complaint(esp, c.code, &policy);
            }
        }
        // Complaints: tokens minted by each sender's ESP for the message sent.
        let world_ref = &world;
        let esps = &participants.esps;
        let mut per_provider: Vec<Vec<(Value, bool, bool)>> = vec![vec![]; PROVIDERS.len()];
        for (k, c) in traffic.complaints.iter().enumerate() {
            let s = &world_ref.senders[c.sender];
            let sent = (slot + i64::from(c.sent_offset)).min(now - 5);
            let reported = (sent + i64::from(c.delay)).min(now - 1);
            let mut req = TokenRequest::new(
                ESPS[s.esp],
                &s.id,
                if s.claimed_nature() == "transactional" {
                    Nature::Transactional
                } else {
                    Nature::Marketing
                },
                &format!("{}@{}", c.reporter, PROVIDERS[c.provider].domain),
                sent,
            );
            req.cmp = Some(s.campaign_in(h));
            req.dom = s.from_domain.map(String::from);
            let (token, _) = mint(&esps[s.esp], &req)?;
            let forged = k < FORGED_PER_HOUR;
            let token = if forged {
                // The fraudster edits a real token (changes its last signature character).
                let last = if token.ends_with('A') { 'B' } else { 'A' };
                format!("{}{last}", &token[..token.len() - 1])
            } else {
                token
            };
            per_provider[c.provider].push((
                json!({"token": token, "code": c.code, "reported_at": rfc3339(reported), "reporter": c.reporter}),
                forged,
                c.attack,
            ));
        }
        for (client, batch) in clients.iter().zip(&per_provider) {
            for chunk in batch.chunks(BATCH) {
                let verdicts = submit(
                    client,
                    "complaints",
                    chunk.iter().map(|(v, _, _)| v.clone()).collect(),
                )
                .await?;
                for ((_, forged, attack), verdict) in chunk.iter().zip(verdicts) {
                    tally.attack_accepted += u64::from(*attack && verdict.is_none());
                    match (forged, verdict) {
                        (true, Some(_)) => {
                            tally.forged += 1;
                            tally.forged_rejected += 1;
                        }
                        (true, None) => tally.forged += 1,
                        (false, None) => {
                            tally.complaints += 1;
                            tally.accepted += 1;
                        }
                        (false, Some(reason)) => {
                            tally.complaints += 1;
                            *tally.rejected_legit.entry(reason).or_default() += 1;
                        }
                    }
                }
            }
        }
        reports
            .poll(&http, &a.esp_api_url, &participants, &ricochet_keys, h)
            .await?;
        bar.set_message(format!(
            "complaints accepted {}, forged refused {}, tier changes {}",
            tally.accepted,
            tally.forged_rejected,
            reports.seen.len()
        ));
        bar.inc(1);
        let due = Duration::from_secs_f64(f64::from(h + 1) * 3600.0 / a.speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    bar.finish();

    // Let the loader and scoring catch up: done when no change arrived for
    // 5 s after the last one, or at --settle-secs.
    println!(
        "waiting for scoring to settle (at most {} s) ...",
        a.settle_secs
    );
    let settle_deadline = Instant::now() + Duration::from_secs(a.settle_secs);
    let mut quiet_since = Instant::now();
    while Instant::now() < settle_deadline && quiet_since.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if reports
            .poll(
                &http,
                &a.esp_api_url,
                &participants,
                &ricochet_keys,
                a.hours,
            )
            .await?
            > 0
        {
            quiet_since = Instant::now();
        }
    }

    for (i, esp) in ESPS.iter().enumerate() {
        println!();
        let items = &reports.items[i];
        println!(
            "{esp} received {} tier change(s); the first {}:",
            items.len(),
            items.len().min(SHOWN)
        );
        print_table(esp, 0, &items[..items.len().min(SHOWN)], reports.cursors[i]);
        if items.len() > SHOWN {
            println!(
                "... all of them: ricochet report offenders --esp {esp} --key {}",
                a.keys_dir.join(format!("{esp}.jwk")).display()
            );
        }
    }
    let target = &world.senders[world.bombed];
    let target_rep: Value = http
        .get(format!(
            "{}/v1/senders/{}/reputation",
            a.esp_api_url, target.id
        ))
        .bearer_auth(mint_bearer(
            &participants.esps[target.esp],
            ESPS[target.esp],
            "ricochet-esp-api",
            unix_now(),
            120,
        )?)
        .send()
        .await?
        .json()
        .await?;
    println!();
    let expected = tally.accepted as usize;
    let (api, keys) = (a.esp_api_url.as_str(), &ricochet_keys);
    let patience = (expected, Duration::from_secs(30));
    let feeds = feed::read_all(&http, api, &participants, keys, patience).await?;
    feed::print(&feeds);
    let patience = Duration::from_secs(10);
    let view = provider_view::read(&http, api, &participants, keys, patience).await?;
    provider_view::print(&view);
    let ok = summarize(&world, &tally, &reports, &target_rep);
    println!(
        "  complaint feed: {} entries for {} accepted complaints (one each)",
        feeds.total(),
        tally.accepted
    );
    let ok = ok && feeds.total() == expected;
    if feeds.total() != expected {
        println!("  PROBLEM: the ESPs' complaint feeds do not hold exactly one entry per accepted complaint");
    }
    println!(
        "  provider list: {} key(s) at throttle or above, {} the tier changes the ESPs received",
        view.listed.len(),
        if view.matches {
            "the same as"
        } else {
            "NOT the same as"
        }
    );
    if !view.matches {
        println!("  PROBLEM: the provider list and the ESPs' offender reports disagree");
    }
    let ok = ok && view.matches;
    println!();
    println!("Where to look next:");
    if let Some(p) = &a.prometheus_url {
        println!("  metrics:    {p}/graph?g0.expr=sum%20by%20(tier)%20(ricochet_scoring_senders)  (every service's /metrics is scraped)");
    }
    println!("  dashboards: dashboards/ricochet-complaints.json and dashboards/ricochet-operations.json (Grafana provisioning in deploy/grafana);");
    println!(
        "              `ricochet dashboards check --esp {} --sender {}` runs their queries here",
        ESPS[0], target.id
    );
    println!(
        "  audit:      `ricochet audit verify --esp {}` recomputes the penalty chain",
        ESPS[0]
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the outcome against the ground truth; false if the pipeline
/// itself misbehaved (a valid complaint refused, a forged one accepted, no
/// report).
fn summarize(world: &World, tally: &Tally, reports: &Reports, target_rep: &Value) -> bool {
    let (items, seen) = (&reports.items, &reports.seen);
    // The tier in force at the end: the last change per sender.
    let mut final_tier: HashMap<&str, &str> = HashMap::new();
    for item in items.iter().flatten().filter(|i| i["level"] == "sender") {
        final_tier.insert(
            item["sender"].as_str().unwrap_or(""),
            item["to_tier"].as_str().unwrap_or(""),
        );
    }
    println!();
    println!("Ground truth vs. what the ESPs were told");
    println!(
        "  complaints submitted: {} valid ({} accepted), {} forged ({} refused); {} delivery counts",
        tally.complaints, tally.accepted, tally.forged, tally.forged_rejected, tally.deliveries
    );
    let mut by_kind: BTreeMap<Behaviour, (usize, usize, Vec<u32>)> = BTreeMap::new();
    let mut good_penalized = vec![];
    for s in &world.senders {
        let penalized = final_tier.get(s.id.as_str()).is_some_and(|t| *t != "ok");
        let e = by_kind.entry(s.behaviour).or_default();
        e.0 += 1;
        if penalized {
            e.1 += 1;
            if let Some((h, _)) = seen.get(&s.id) {
                e.2.push(h.saturating_sub(s.onset));
            }
        }
        if penalized && s.behaviour == Behaviour::Good {
            good_penalized.push(s);
        }
    }
    for (kind, (n, penalized, delays)) in &by_kind {
        if !kind.is_bad() {
            continue;
        }
        let mut d = delays.clone();
        d.sort_unstable();
        let median = d
            .get(d.len() / 2)
            .map_or("-".to_string(), |h| format!("{h} h"));
        let max = d.last().map_or("-".to_string(), |h| format!("{h} h"));
        println!(
            "  bad senders penalized, {:<16} {penalized:>4} of {n:<4} (simulated time from onset to penalty: median {median}, max {max})",
            format!("{}:", kind.as_str())
        );
    }
    let bad_total: usize = by_kind
        .iter()
        .filter(|(k, _)| k.is_bad())
        .map(|(_, v)| v.0)
        .sum();
    let bad_hit: usize = by_kind
        .iter()
        .filter(|(k, _)| k.is_bad())
        .map(|(_, v)| v.1)
        .sum();
    println!("  bad senders penalized in all: {bad_hit} of {bad_total}");
    println!(
        "  good senders penalized: {} of {}{}",
        good_penalized.len(),
        by_kind.get(&Behaviour::Good).map_or(0, |v| v.0),
        good_penalized
            .iter()
            .take(5)
            .map(|s| format!(
                " {} ({}, true rate {:.3} %)",
                s.id,
                final_tier[s.id.as_str()],
                s.base_rate * 100.0
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let target = &world.senders[world.bombed];
    let tier = final_tier.get(target.id.as_str()).copied().unwrap_or("ok");
    let weighted_24h = target_rep["windows"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["window"] == "24h"))
        .map_or(f64::NAN, |w| {
            w["weighted_complaints"].as_f64().unwrap_or(f64::NAN)
        });
    println!(
        "  complaint bombing of {} ({} phishing complaints accepted from {ATTACKER_ACCOUNTS} accounts at {} over {ATTACK_HOURS} h, {ATTACK_PER_HOUR}/h): {} (tier {tier}; weighted complaints counted in 24 h: {weighted_24h:.0}, the attack alone would weigh {:.0} uncapped)",
        target.id,
        tally.attack_accepted,
        PROVIDERS[world::ATTACKER_PROVIDER].id,
        if tier == "ok" { "did not work" } else { "WORKED" },
        tally.attack_accepted as f64 * Policy::default().weight(ComplaintCode::Phishing)
    );
    let mut ok = true;
    if !tally.rejected_legit.is_empty() {
        println!(
            "  PROBLEM: valid complaints were refused: {:?}",
            tally.rejected_legit
        );
        ok = false;
    }
    if tally.forged_rejected != tally.forged {
        println!(
            "  PROBLEM: {} forged complaints were accepted",
            tally.forged - tally.forged_rejected
        );
        ok = false;
    }
    if items.iter().all(|i| i.is_empty()) {
        println!("  PROBLEM: no ESP received any tier change");
        ok = false;
    }
    let penalized = |id: &str| final_tier.get(id).is_some_and(|t| *t != "ok");
    ok &= levels::summarize(world, &tally.truth, items, &reports.groups, &penalized);
    ok
}
