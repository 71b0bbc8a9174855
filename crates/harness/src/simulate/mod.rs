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
mod replay;
mod summary;
mod world;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::ingest::IngestClient;
use crate::participants;
use ricochet_registry::ParticipantKind;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::key_file::write_private;
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, JwkSet, SigningKey, VerifyingKey};
use serde_json::{json, Value};

use crate::api::{fetch_offenders, print_table};
use world::{Behaviour, World, ESPS, PROVIDERS};

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
    providers: Vec<Arc<SigningKey>>,
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
        providers.push(Arc::new(enrol(
            kind,
            p.id,
            Algorithm::ES256,
            kid,
            &[p.domain],
        )?));
    }
    Ok(Participants { esps, providers })
}

fn rfc3339(unix: i64) -> String {
    crate::clock::rfc3339_ms(unix * 1000).expect("a simulated time in range")
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

/// What the replay and the reports work with.
struct Sim<'a> {
    a: &'a SimulateArgs,
    world: &'a World,
    participants: &'a Participants,
    /// One ingest client per provider.
    clients: Vec<IngestClient>,
    http: reqwest::Client,
    /// Ricochet's keys, to verify what the ESPs receive.
    ricochet_keys: BTreeMap<String, VerifyingKey>,
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
    let sim = Sim::start(&a, &world, &participants).await?;
    let mut reports = Reports::new();
    let tally = replay::replay(&sim, &mut reports).await?;
    sim.settle(&mut reports).await?;
    sim.print_reports(&reports);
    let ok = sim.conclude(&tally, &reports).await?;
    where_to_look(&a, &world.senders[world.bombed].id);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl<'a> Sim<'a> {
    /// Waits until the services know the participants; reads Ricochet's keys.
    async fn start(
        a: &'a SimulateArgs,
        world: &'a World,
        participants: &'a Participants,
    ) -> Result<Sim<'a>> {
        let http = reqwest::Client::new();
        wait_registered(&http, a, participants).await?;
        let jwks: Value = http
            .get(format!("{}/.well-known/jwks.json", a.esp_api_url))
            .send()
            .await?
            .json()
            .await?;
        let ricochet_keys = JwkSet::from_json(&jwks.to_string())?.verifying_keys()?;
        let clients = PROVIDERS
            .iter()
            .zip(&participants.providers)
            .map(|(p, key)| IngestClient::new(&a.ingest_url, p.id, key.clone()))
            .collect();
        Ok(Sim {
            a,
            world,
            participants,
            clients,
            http,
            ricochet_keys,
        })
    }

    /// Reads new offender reports after simulated hour `h`; how many came.
    async fn poll(&self, reports: &mut Reports, h: u32) -> Result<usize> {
        let (http, api, p) = (&self.http, &self.a.esp_api_url, self.participants);
        reports.poll(http, api, p, &self.ricochet_keys, h).await
    }

    /// Lets the loader and scoring catch up: done when no change arrived for
    /// 5 s after the last one, or at --settle-secs.
    async fn settle(&self, reports: &mut Reports) -> Result<()> {
        let secs = self.a.settle_secs;
        println!("waiting for scoring to settle (at most {secs} s) ...");
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.poll(reports, self.a.hours).await? > 0 {
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }

    /// Prints the first tier changes each ESP received.
    fn print_reports(&self, reports: &Reports) {
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
                    self.a.keys_dir.join(format!("{esp}.jwk")).display()
                );
            }
        }
    }

    /// The bombed sender's reputation, as its ESP reads it.
    async fn target_reputation(&self) -> Result<Value> {
        let target = &self.world.senders[self.world.bombed];
        let key = &self.participants.esps[target.esp];
        let bearer = mint_bearer(key, ESPS[target.esp], "ricochet-esp-api", unix_now(), 120)?;
        let url = format!("{}/v1/senders/{}/reputation", self.a.esp_api_url, target.id);
        let rep = self.http.get(url).bearer_auth(bearer).send().await?;
        Ok(rep.json().await?)
    }

    /// Reads the feeds and the provider list, prints the summary against
    /// the ground truth; false if the pipeline misbehaved.
    async fn conclude(&self, tally: &Tally, reports: &Reports) -> Result<bool> {
        let target_rep = self.target_reputation().await?;
        println!();
        let expected = tally.accepted as usize;
        let (http, api, keys) = (&self.http, self.a.esp_api_url.as_str(), &self.ricochet_keys);
        let patience = (expected, Duration::from_secs(30));
        let feeds = feed::read_all(http, api, self.participants, keys, patience).await?;
        feed::print(&feeds);
        let patience = Duration::from_secs(10);
        let view = provider_view::read(http, api, self.participants, keys, patience).await?;
        provider_view::print(&view);
        let ok = summary::summarize(self.world, tally, reports, &target_rep);
        println!(
            "  complaint feed: {} entries for {} accepted complaints (one each)",
            feeds.total(),
            tally.accepted
        );
        if feeds.total() != expected {
            println!("  PROBLEM: the ESPs' complaint feeds do not hold exactly one entry per accepted complaint");
        }
        let same = if view.matches {
            "the same as"
        } else {
            "NOT the same as"
        };
        println!(
            "  provider list: {} key(s) at throttle or above, {same} the tier changes the ESPs received",
            view.listed.len()
        );
        if !view.matches {
            println!("  PROBLEM: the provider list and the ESPs' offender reports disagree");
        }
        Ok(ok && feeds.total() == expected && view.matches)
    }
}

/// Where an operator looks after the simulation.
fn where_to_look(a: &SimulateArgs, target: &str) {
    println!();
    println!("Where to look next:");
    if let Some(p) = &a.prometheus_url {
        println!("  metrics:    {p}/graph?g0.expr=sum%20by%20(tier)%20(ricochet_scoring_senders)  (every service's /metrics is scraped)");
    }
    println!("  dashboards: dashboards/ricochet-complaints.json and dashboards/ricochet-operations.json (Grafana provisioning in deploy/grafana);");
    println!(
        "              `ricochet dashboards check --esp {} --sender {target}` runs their queries here",
        ESPS[0]
    );
    println!(
        "  audit:      `ricochet audit verify --esp {}` recomputes the penalty chain",
        ESPS[0]
    );
}
