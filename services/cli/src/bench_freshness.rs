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

use anyhow::Result;
use ricochet_harness::ingest::post_body;
use ricochet_harness::participants::{own_key, register};
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::ParticipantKind;
use ricochet_storage::ClickHouseConfig;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, Nature, SigningKey, TokenRequest};
use serde_json::{json, Value};

use ricochet_harness::process::{service_binary, ServiceProcess};

const ESP: &str = "fresh-esp.example";
const PROVIDER: &str = "fresh-mail.example";
const DOMAIN: &str = "fresh.example";
/// Complaints in one probe: on 10,000 deliveries, enough for `throttle`.
const PROBE_COMPLAINTS: usize = 60;
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
    let reported_at = ricochet_harness::clock::now_rfc3339();
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
    ch.server_client()
        .query(&format!("DROP DATABASE IF EXISTS `{}`", ch.database))
        .execute()
        .await?;
    result
}

async fn measure(
    a: &FreshnessArgs,
    kafka: &KafkaConfig,
    ch: &ClickHouseConfig,
    run_id: u32,
    [ingest_bin, loader_bin, scoring_bin]: [&Path; 3],
) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    let esp_id = (Algorithm::EdDSA, "fresh-esp-1");
    let esp = register(&registry, ParticipantKind::Esp, ESP, esp_id, &[])?;
    let provider_id = (Algorithm::EdDSA, "fresh-mail-1");
    let kind = ParticipantKind::Provider;
    let provider = register(&registry, kind, PROVIDER, provider_id, &[DOMAIN])?;
    let ricochet_key = dir.path().join("ricochet.jwk");
    own_key(&ricochet_key, "ricochet-bench")?;

    // Denominators straight into ClickHouse: background senders deliver so
    // much that their complaints never move a tier; each probe sender 10,000.
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
    let mut bodies = vec![];
    let mut minted = 0;
    while minted < background_n {
        let sender = format!("bg-{}", (minted / per_request) % senders as usize);
        bodies.push(complaint_body(&mint_for(
            &esp,
            &sender,
            per_request,
            minted,
        )?));
        minted += per_request;
    }
    let probes: Vec<Vec<String>> = (0..a.probes)
        .map(|i| {
            mint_for(
                &esp,
                &format!("probe-{i}"),
                PROBE_COMPLAINTS,
                1_000_000_000 + i * PROBE_COMPLAINTS,
            )
        })
        .collect::<Result<_>>()?;

    let topic = |t: &str| format!("fresh-{run_id}-{t}");
    let (complaints_t, deliveries_t, dlq_t, penalties_t, feedback_t) = (
        topic("complaints"),
        topic("deliveries"),
        topic("dlq"),
        topic("penalties"),
        topic("feedback"),
    );
    let topics = [
        &complaints_t,
        &deliveries_t,
        &dlq_t,
        &penalties_t,
        &feedback_t,
    ];
    ensure_topics(kafka, &topics.map(String::as_str)).await?;
    let registry_s = registry.display().to_string();
    let common = [
        ("RICOCHET_KAFKA_BROKERS", kafka.brokers.as_str()),
        ("RICOCHET_CLICKHOUSE_URL", ch.url.as_str()),
        ("RICOCHET_CLICKHOUSE_DATABASE", ch.database.as_str()),
    ];
    let mut ingest = ServiceProcess::spawn(
        ingest_bin,
        "--listen",
        &[
            "--registry",
            &registry_s,
            "--complaints-topic",
            &complaints_t,
            "--deliveries-topic",
            &deliveries_t,
            "--rate-per-sec",
            "1000000",
            "--burst",
            "1000000",
        ],
        &common,
    )?;
    let batch_ms = a.loader_batch_ms.to_string();
    let group = format!("fresh-{run_id}");
    let mut loader = ServiceProcess::spawn(
        loader_bin,
        "--listen",
        &[
            "--group",
            &group,
            "--complaints-topic",
            &complaints_t,
            "--deliveries-topic",
            &deliveries_t,
            "--dead-letter-topic",
            &dlq_t,
            "--batch-ms",
            &batch_ms,
        ],
        &common,
    )?;
    let interval = a.scoring_interval.to_string();
    let key_s = ricochet_key.display().to_string();
    let mut scoring = ServiceProcess::spawn(
        scoring_bin,
        "--listen",
        &[
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
        ],
        &common,
    )?;
    for s in [&mut ingest, &mut loader, &mut scoring] {
        s.wait_ready().await?;
    }
    let provider_bearer = format!(
        "Bearer {}",
        mint_bearer(&provider, PROVIDER, "ricochet-ingest", unix_now(), 290)?
    );
    let esp_bearer = format!(
        "Bearer {}",
        mint_bearer(&esp, ESP, "ricochet-esp-api", unix_now(), 290)?
    );
    let http = reqwest::Client::new();

    // Background load: one request every 1/REQUESTS_PER_SEC s, in flight at most 64.
    eprintln!(
        "background load: {} complaints/s for {} s ({} requests of {per_request}); {} probes ...",
        a.rate,
        a.seconds,
        REQUESTS_PER_SEC * a.seconds,
        a.probes
    );
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load = {
        let (http, url, bearer) = (
            http.clone(),
            format!("{}/v1/complaints", ingest.url),
            provider_bearer.clone(),
        );
        let (accepted, failed) = (accepted.clone(), failed.clone());
        let requests = (REQUESTS_PER_SEC * a.seconds) as usize;
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / REQUESTS_PER_SEC));
            let started = Instant::now();
            let mut tasks = vec![];
            for body in bodies.into_iter().take(requests) {
                tick.tick().await;
                let permit = slots.clone().acquire_owned().await.expect("open semaphore");
                let (http, url, bearer, accepted, failed) = (
                    http.clone(),
                    url.clone(),
                    bearer.clone(),
                    accepted.clone(),
                    failed.clone(),
                );
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
        })
    };

    // Probes, spread over the load after a 3 s warm-up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spacing = Duration::from_secs_f64((a.seconds as f64 - 6.0).max(1.0) / a.probes as f64);
    let follower = FeedFollower::start(http.clone(), scoring.url.clone(), esp_bearer.clone());
    let mut loaded_ms = vec![];
    let mut visible_ms = vec![];
    let mut fed_ms = vec![];
    let mut fed_after_ms = vec![];
    let mut lost = 0;
    for (i, tokens) in probes.iter().enumerate() {
        let sender = format!("probe-{i}");
        let n = post(
            &http,
            &format!("{}/v1/complaints", ingest.url),
            &provider_bearer,
            complaint_body(tokens),
        )
        .await?;
        anyhow::ensure!(
            n as usize == PROBE_COMPLAINTS,
            "probe {i}: {n} of {PROBE_COMPLAINTS} accepted"
        );
        let t0 = Instant::now();
        let loaded = wait_loaded(ch, &sender, t0);
        let visible = wait_visible(&http, &scoring.url, &esp_bearer, &sender, t0);
        let fed = follower.wait_fed(&sender, t0);
        let (loaded, visible, fed) = tokio::join!(loaded, visible, fed);
        match (loaded?, visible?, fed) {
            (Some(l), Some(v), Some(f)) => {
                loaded_ms.push(l);
                visible_ms.push(v);
                fed_ms.push(f);
                fed_after_ms.push(f - l);
            }
            _ => lost += 1,
        }
        eprint!("\rprobes done: {}/{}", i + 1, a.probes);
        tokio::time::sleep(spacing.saturating_sub(t0.elapsed())).await;
    }
    eprintln!();
    let load_secs = load.await?;
    let achieved = accepted.load(Ordering::Relaxed) as f64 / load_secs;
    let failures = failed.load(Ordering::Relaxed);
    for s in [&mut scoring, &mut loader, &mut ingest] {
        s.stop();
    }

    follower.stop();
    loaded_ms.sort_by(|a, b| a.total_cmp(b));
    visible_ms.sort_by(|a, b| a.total_cmp(b));
    fed_ms.sort_by(|a, b| a.total_cmp(b));
    fed_after_ms.sort_by(|a, b| a.total_cmp(b));
    let p = ricochet_harness::stats::percentile;
    println!();
    println!(
        "freshness bench: {} probes of {PROBE_COMPLAINTS} complaints under {achieved:.0} complaints/s background load (target {}), scoring every {} s, loader batches of at most {} ms, {} cores",
        visible_ms.len(), a.rate, a.scoring_interval, a.loader_batch_ms,
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!("| from the provider's 200 until | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| baseline: complaints in ClickHouse | {:.0} | {:.0} | {:.0} |",
        p(&loaded_ms, 0.5),
        p(&loaded_ms, 0.99),
        p(&loaded_ms, 1.0)
    );
    println!(
        "| tier change in the offenders API | {:.0} | {:.0} | {:.0} |",
        p(&visible_ms, 0.5),
        p(&visible_ms, 0.99),
        p(&visible_ms, 1.0)
    );
    println!(
        "| every complaint in the ESP's feed (GET /v1/complaints) | {:.0} | {:.0} | {:.0} |",
        p(&fed_ms, 0.5),
        p(&fed_ms, 0.99),
        p(&fed_ms, 1.0)
    );
    println!(
        "| of which after the baseline, per probe (feed stage) | {:.0} | {:.0} | {:.0} |",
        p(&fed_after_ms, 0.5),
        p(&fed_after_ms, 0.99),
        p(&fed_after_ms, 1.0)
    );
    println!(
        "scoring adds {:.0} ms at p50 ({:.2}x the baseline); background requests failed: {failures}; probes not seen within 30 s: {lost}",
        p(&visible_ms, 0.5) - p(&loaded_ms, 0.5),
        p(&visible_ms, 0.5) / p(&loaded_ms, 0.5)
    );
    anyhow::ensure!(
        lost == 0 && failures == 0,
        "some probes or requests failed; see above"
    );
    Ok(ExitCode::SUCCESS)
}

/// Posts one complaint batch; returns how many were accepted.
/// POSTs a batch; how many complaints ingest accepted, or its problem.
async fn post(http: &reqwest::Client, url: &str, bearer: &str, body: Vec<u8>) -> Result<u64> {
    let answer = post_body(http, url, bearer, body).await?;
    let accepted = answer.accepted();
    answer.ok()?;
    Ok(accepted)
}

const POLL: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(30);

/// Milliseconds from `t0` until every probe complaint is in ClickHouse.
async fn wait_loaded(ch: &ClickHouseConfig, sender: &str, t0: Instant) -> Result<Option<f64>> {
    let client = ch.client();
    while t0.elapsed() < GIVE_UP {
        let n: u64 = client
            .query("SELECT uniqExact(jti) FROM complaints WHERE esp = ? AND sender = ?")
            .bind(ESP)
            .bind(sender)
            .fetch_one()
            .await?;
        if n as usize >= PROBE_COMPLAINTS {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}

/// Reads the ESP's complaint feed as it grows (as an ESP would, with a
/// cursor) and counts entries per sender.
struct FeedFollower {
    per_sender: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedFollower {
    fn start(http: reqwest::Client, api: String, bearer: String) -> FeedFollower {
        let per_sender: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
            Arc::default();
        let counts = per_sender.clone();
        let task = tokio::spawn(async move {
            let mut since = 0;
            loop {
                let url = format!("{api}/v1/complaints?since={since}&limit=1000");
                let page: Option<Value> =
                    match http.get(url).header("authorization", &bearer).send().await {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                let items = page
                    .as_ref()
                    .and_then(|p| p["items"].as_array().cloned())
                    .unwrap_or_default();
                {
                    let mut counts = counts.lock().expect("feed counts");
                    for i in &items {
                        let sender = i["sender"].as_str().unwrap_or("").to_string();
                        *counts.entry(sender).or_default() += 1;
                    }
                }
                since = page.and_then(|p| p["next"].as_u64()).unwrap_or(since);
                if items.len() < 1000 {
                    tokio::time::sleep(POLL).await;
                }
            }
        });
        FeedFollower { per_sender, task }
    }

    /// Milliseconds from `t0` until every probe complaint of `sender` was
    /// in the feed; `None` after [`GIVE_UP`].
    async fn wait_fed(&self, sender: &str, t0: Instant) -> Option<f64> {
        while t0.elapsed() < GIVE_UP {
            let n = self
                .per_sender
                .lock()
                .expect("feed counts")
                .get(sender)
                .copied();
            if n.unwrap_or(0) >= PROBE_COMPLAINTS {
                return Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// Milliseconds from `t0` until the ESP's offenders page lists the sender.
async fn wait_visible(
    http: &reqwest::Client,
    api: &str,
    bearer: &str,
    sender: &str,
    t0: Instant,
) -> Result<Option<f64>> {
    while t0.elapsed() < GIVE_UP {
        let page: Value = http
            .get(format!("{api}/v1/offenders?since=0&limit=1000"))
            .header("authorization", bearer)
            .send()
            .await?
            .json()
            .await?;
        let seen = page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["sender"] == sender));
        if seen {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}
