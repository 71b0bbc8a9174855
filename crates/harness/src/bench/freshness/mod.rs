//! `ricochet bench freshness`: how long after a provider's 200 a tier change
//! is visible in the ESP's offenders API, and the complaints are in the
//! ESP's complaint feed, under steady background load, with the real
//! ingest, loader and scoring processes. The baseline, measured for the same
//! probes in the same run, is the pipeline without scoring: the time until
//! the probe's complaints are in ClickHouse.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ingest::post_body;
use crate::participants::{own_key, register};
use anyhow::Result;
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::ParticipantKind;
use ricochet_storage::ClickHouseConfig;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, Nature, SigningKey, TokenRequest};
use serde_json::{json, Value};

use crate::process::{service_binary, ServiceProcess};

mod watch;
use watch::{wait_loaded, wait_visible, FeedFollower};

pub(super) const ESP: &str = "fresh-esp.example";
const PROVIDER: &str = "fresh-mail.example";
const DOMAIN: &str = "fresh.example";
/// Complaints in one probe: on 10,000 deliveries, enough for `throttle`.
pub(super) const PROBE_COMPLAINTS: usize = 60;
/// Background load goes out in this many requests a second.
const REQUESTS_PER_SEC: u64 = 50;

/// Bench settings (see `ricochet bench freshness --help`).
pub struct FreshnessArgs {
    pub rate: u64,
    pub seconds: u64,
    pub probes: usize,
    pub scoring_interval: f64,
    pub loader_batch_ms: u64,
}

fn complaint_body(tokens: &[String]) -> Vec<u8> {
    let reported_at = crate::clock::now_rfc3339();
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "code": "unwanted", "reported_at": reported_at}))
        .collect();
    serde_json::to_vec(&json!({ "complaints": items })).expect("JSON")
}

fn mint_for(esp: &SigningKey, sender: &str, n: usize, first: usize) -> Result<Vec<String>> {
    let now = unix_now();
    (first..first + n)
        .map(|i| {
            let req = TokenRequest::new(
                ESP,
                sender,
                Nature::Marketing,
                &format!("user{i}@{DOMAIN}"),
                now - 60,
            );
            Ok(mint(esp, &req)?.0)
        })
        .collect()
}

/// Runs the bench and prints its table.
pub async fn run(a: FreshnessArgs) -> Result<ExitCode> {
    let (ingest_bin, loader_bin, scoring_bin) = (
        service_binary("ricochet-ingest", None)?,
        service_binary("ricochet-loader", None)?,
        service_binary("ricochet-scoring", None)?,
    );
    let kafka = KafkaConfig::from_env()?;
    let run_id = std::process::id();
    let ch = crate::bench::bench_database(&format!("bench_freshness_{run_id}")).await?;
    let result = measure(
        &a,
        &kafka,
        &ch,
        run_id,
        [&ingest_bin, &loader_bin, &scoring_bin],
    )
    .await;
    crate::bench::drop_bench_database(&ch).await?;
    result
}

/// What the bench submits: the participants, the background batches and
/// the probes' tokens.
struct World {
    _dir: tempfile::TempDir,
    registry: std::path::PathBuf,
    ricochet_key: std::path::PathBuf,
    esp: SigningKey,
    provider: SigningKey,
    /// Background batches, serialized.
    bodies: Vec<Vec<u8>>,
    /// Per probe, its tokens.
    probes: Vec<Vec<String>>,
}

/// The three services under test.
struct Services {
    ingest: ServiceProcess,
    loader: ServiceProcess,
    scoring: ServiceProcess,
}

/// What the probes measured (ms from the provider's 200).
#[derive(Default)]
struct Probes {
    loaded: Vec<f64>,
    visible: Vec<f64>,
    fed: Vec<f64>,
    fed_after: Vec<f64>,
    lost: usize,
}

async fn measure(
    a: &FreshnessArgs,
    kafka: &KafkaConfig,
    ch: &ClickHouseConfig,
    run_id: u32,
    bins: [&Path; 3],
) -> Result<ExitCode> {
    let world = world(a, ch).await?;
    let mut services = start(a, kafka, ch, run_id, bins, &world).await?;
    let bearer = |key, iss, aud| -> Result<String> {
        Ok(format!(
            "Bearer {}",
            mint_bearer(key, iss, aud, unix_now(), 290)?
        ))
    };
    let provider_bearer = bearer(&world.provider, PROVIDER, "ricochet-ingest")?;
    let esp_bearer = bearer(&world.esp, ESP, "ricochet-esp-api")?;
    let http = reqwest::Client::new();
    let ingest_url = format!("{}/v1/complaints", services.ingest.url);
    let load = Load::start(a, &http, &ingest_url, &provider_bearer, world.bodies);
    // Probes, spread over the load after a 3 s warm-up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let follower = FeedFollower::start(
        http.clone(),
        services.scoring.url.clone(),
        esp_bearer.clone(),
    );
    let watch = Watch {
        ch,
        http: &http,
        api: &services.scoring.url,
        esp_bearer: &esp_bearer,
        follower: &follower,
    };
    let probes = run_probes(a, &watch, (&ingest_url, &provider_bearer), &world.probes).await?;
    let (achieved, failures) = load.finish().await?;
    for s in [
        &mut services.scoring,
        &mut services.loader,
        &mut services.ingest,
    ] {
        s.stop();
    }
    follower.stop();
    print_table(a, probes.sorted(), achieved, failures)
}

/// Registers the participants, writes the denominators straight into
/// ClickHouse (background senders deliver so much that their complaints
/// never move a tier; each probe sender 10,000) and mints every token.
async fn world(a: &FreshnessArgs, ch: &ClickHouseConfig) -> Result<World> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    let esp_id = (Algorithm::EdDSA, "fresh-esp-1");
    let esp = register(&registry, ParticipantKind::Esp, ESP, esp_id, &[])?;
    let provider_id = (Algorithm::EdDSA, "fresh-mail-1");
    let kind = ParticipantKind::Provider;
    let provider = register(&registry, kind, PROVIDER, provider_id, &[DOMAIN])?;
    let ricochet_key = dir.path().join("ricochet.jwk");
    own_key(&ricochet_key, "ricochet-bench")?;
    let senders = 1_000;
    ch.client()
        .query(&format!(
            "INSERT INTO deliveries (esp, sender, provider, hour, delivered, received_at)
             SELECT '{ESP}', if(number < {senders}, concat('bg-', toString(number)), concat('probe-', toString(number - {senders}))),
                    '{PROVIDER}', toStartOfHour(now()), if(number < {senders}, 100000000, 10000), now64(3)
             FROM numbers({})",
            senders + a.probes as u64
        ))
        .execute()
        .await?;
    let background_n = (a.rate * (a.seconds + 5)) as usize;
    eprintln!(
        "minting {background_n} background tokens and {} probe tokens ...",
        a.probes * PROBE_COMPLAINTS
    );
    let per_request = (a.rate / REQUESTS_PER_SEC).max(1) as usize;
    let bodies = (0..background_n.div_ceil(per_request))
        .map(|r| {
            let sender = format!("bg-{}", r % senders as usize);
            Ok(complaint_body(&mint_for(
                &esp,
                &sender,
                per_request,
                r * per_request,
            )?))
        })
        .collect::<Result<_>>()?;
    let probes = (0..a.probes)
        .map(|i| {
            let first = 1_000_000_000 + i * PROBE_COMPLAINTS;
            mint_for(&esp, &format!("probe-{i}"), PROBE_COMPLAINTS, first)
        })
        .collect::<Result<_>>()?;
    Ok(World {
        _dir: dir,
        registry,
        ricochet_key,
        esp,
        provider,
        bodies,
        probes,
    })
}

/// Creates the run's topics and starts ingest, the loader and scoring on them.
async fn start(
    a: &FreshnessArgs,
    kafka: &KafkaConfig,
    ch: &ClickHouseConfig,
    run_id: u32,
    [ingest_bin, loader_bin, scoring_bin]: [&Path; 3],
    world: &World,
) -> Result<Services> {
    let topic = |t: &str| format!("fresh-{run_id}-{t}");
    let [complaints_t, deliveries_t, dlq_t, penalties_t, feedback_t] =
        ["complaints", "deliveries", "dlq", "penalties", "feedback"].map(topic);
    let topics = [
        &complaints_t,
        &deliveries_t,
        &dlq_t,
        &penalties_t,
        &feedback_t,
    ];
    ensure_topics(kafka, &topics.map(String::as_str)).await?;
    let registry_s = world.registry.display().to_string();
    let common = [
        ("RICOCHET_KAFKA_BROKERS", kafka.brokers.as_str()),
        ("RICOCHET_CLICKHOUSE_URL", ch.url.as_str()),
        ("RICOCHET_CLICKHOUSE_DATABASE", ch.database.as_str()),
    ];
    let topics_args = [
        "--complaints-topic",
        &complaints_t,
        "--deliveries-topic",
        &deliveries_t,
    ];
    let unlimited = ["--rate-per-sec", "1000000", "--burst", "1000000"];
    let ingest_args = [
        &["--registry", registry_s.as_str()][..],
        &topics_args,
        &unlimited,
    ]
    .concat();
    let mut ingest = ServiceProcess::spawn(ingest_bin, "--listen", &ingest_args, &common)?;
    let (batch_ms, group) = (a.loader_batch_ms.to_string(), format!("fresh-{run_id}"));
    let loader_own = [
        "--group",
        &group,
        "--dead-letter-topic",
        &dlq_t,
        "--batch-ms",
        &batch_ms,
    ];
    let loader_args = [&topics_args[..], &loader_own].concat();
    let mut loader = ServiceProcess::spawn(loader_bin, "--listen", &loader_args, &common)?;
    let (interval, key_s) = (
        a.scoring_interval.to_string(),
        world.ricochet_key.display().to_string(),
    );
    let scoring_args = [
        "--registry",
        &registry_s,
        "--signing-key",
        &key_s,
        "--interval-secs",
        &interval,
        "--penalties-topic",
        &penalties_t,
        "--feedback-topic",
        &feedback_t,
    ];
    let mut scoring = ServiceProcess::spawn(scoring_bin, "--listen", &scoring_args, &common)?;
    for s in [&mut ingest, &mut loader, &mut scoring] {
        s.wait_ready().await?;
    }
    Ok(Services {
        ingest,
        loader,
        scoring,
    })
}

/// The background load: one request every 1/REQUESTS_PER_SEC s, at most 64 in flight.
struct Load {
    task: tokio::task::JoinHandle<f64>,
    accepted: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Load {
    fn start(
        a: &FreshnessArgs,
        http: &reqwest::Client,
        url: &str,
        bearer: &str,
        bodies: Vec<Vec<u8>>,
    ) -> Load {
        let requests = (REQUESTS_PER_SEC * a.seconds) as usize;
        eprintln!(
            "background load: {} complaints/s for {} s ({requests} requests); {} probes ...",
            a.rate, a.seconds, a.probes
        );
        let (accepted, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (http, url, bearer) = (http.clone(), url.to_string(), bearer.to_string());
        let counters = (accepted.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / REQUESTS_PER_SEC));
            let started = Instant::now();
            let mut tasks = vec![];
            for body in bodies.into_iter().take(requests) {
                tick.tick().await;
                let permit = slots.clone().acquire_owned().await.expect("open semaphore");
                let (http, url, bearer) = (http.clone(), url.clone(), bearer.clone());
                let (accepted, failed) = counters.clone();
                tasks.push(tokio::spawn(async move {
                    let _permit = permit;
                    match post(&http, &url, &bearer, body).await {
                        Ok(n) => accepted.fetch_add(n, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            started.elapsed().as_secs_f64()
        });
        Load {
            task,
            accepted,
            failed,
        }
    }

    /// Waits for the load's end: complaints/s accepted and failed requests.
    async fn finish(self) -> Result<(f64, u64)> {
        let secs = self.task.await?;
        let achieved = self.accepted.load(Ordering::Relaxed) as f64 / secs;
        Ok((achieved, self.failed.load(Ordering::Relaxed)))
    }
}

/// Where a probe is watched.
struct Watch<'a> {
    ch: &'a ClickHouseConfig,
    http: &'a reqwest::Client,
    /// The ESP API (scoring).
    api: &'a str,
    esp_bearer: &'a str,
    follower: &'a FeedFollower,
}

/// Submits each probe and waits until it is loaded, scored and fed.
async fn run_probes(
    a: &FreshnessArgs,
    w: &Watch<'_>,
    (url, bearer): (&str, &str),
    probes: &[Vec<String>],
) -> Result<Probes> {
    let spacing = Duration::from_secs_f64((a.seconds as f64 - 6.0).max(1.0) / a.probes as f64);
    let mut out = Probes::default();
    for (i, tokens) in probes.iter().enumerate() {
        let sender = format!("probe-{i}");
        let n = post(w.http, url, bearer, complaint_body(tokens)).await?;
        anyhow::ensure!(
            n as usize == PROBE_COMPLAINTS,
            "probe {i}: {n} of {PROBE_COMPLAINTS} accepted"
        );
        let t0 = Instant::now();
        let loaded = wait_loaded(w.ch, &sender, t0);
        let visible = wait_visible(w.http, w.api, w.esp_bearer, &sender, t0);
        let fed = w.follower.wait_fed(&sender, t0);
        match tokio::join!(loaded, visible, fed) {
            (Ok(Some(l)), Ok(Some(v)), Some(f)) => {
                out.loaded.push(l);
                out.visible.push(v);
                out.fed.push(f);
                out.fed_after.push(f - l);
            }
            (Err(e), _, _) | (_, Err(e), _) => return Err(e),
            _ => out.lost += 1,
        }
        eprint!("\rprobes done: {}/{}", i + 1, a.probes);
        tokio::time::sleep(spacing.saturating_sub(t0.elapsed())).await;
    }
    eprintln!();
    Ok(out)
}

impl Probes {
    fn sorted(mut self) -> Probes {
        for v in [
            &mut self.loaded,
            &mut self.visible,
            &mut self.fed,
            &mut self.fed_after,
        ] {
            v.sort_by(|a, b| a.total_cmp(b));
        }
        self
    }
}

/// Prints the table; an error if a probe or a request failed.
fn print_table(a: &FreshnessArgs, p: Probes, achieved: f64, failures: u64) -> Result<ExitCode> {
    let q = crate::stats::percentile;
    println!();
    println!(
        "freshness bench: {} probes of {PROBE_COMPLAINTS} complaints under {achieved:.0} complaints/s background load (target {}), scoring every {} s, loader batches of at most {} ms, {} cores",
        p.visible.len(), a.rate, a.scoring_interval, a.loader_batch_ms,
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!("| from the provider's 200 until | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        ("baseline: complaints in ClickHouse", &p.loaded),
        ("tier change in the offenders API", &p.visible),
        (
            "every complaint in the ESP's feed (GET /v1/complaints)",
            &p.fed,
        ),
        (
            "of which after the baseline, per probe (feed stage)",
            &p.fed_after,
        ),
    ] {
        println!(
            "| {what} | {:.0} | {:.0} | {:.0} |",
            q(v, 0.5),
            q(v, 0.99),
            q(v, 1.0)
        );
    }
    println!(
        "scoring adds {:.0} ms at p50 ({:.2}x the baseline); background requests failed: {failures}; probes not seen within 30 s: {}",
        q(&p.visible, 0.5) - q(&p.loaded, 0.5),
        q(&p.visible, 0.5) / q(&p.loaded, 0.5),
        p.lost
    );
    anyhow::ensure!(
        p.lost == 0 && failures == 0,
        "some probes or requests failed; see above"
    );
    Ok(ExitCode::SUCCESS)
}

/// POSTs a batch; how many complaints ingest accepted, or its problem.
async fn post(http: &reqwest::Client, url: &str, bearer: &str, body: Vec<u8>) -> Result<u64> {
    let answer = post_body(http, url, bearer, body).await?;
    let accepted = answer.accepted();
    answer.ok()?;
    Ok(accepted)
}
