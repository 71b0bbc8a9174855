//! `ricochet bench`: benchmarks that print figures and ratios against a
//! baseline measured in the same run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use ricochet_kafka::{ensure_topics, KafkaConfig};

use ricochet_harness::ingest::post_body;
use ricochet_harness::participants::register;
use ricochet_harness::process::{service_binary, ServiceProcess};
use ricochet_harness::stats::percentile;
use ricochet_registry::{ParticipantKind, Registry};
use ricochet_storage::{ClickHouseConfig, Migrator};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, verify, Algorithm, Nature, SigningKey, TokenRequest, VerifyOptions};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive a real ingest process over HTTP with pre-minted tokens.
    ///
    /// Starts `ricochet-ingest` (next to this binary) against the broker in
    /// RICOCHET_KAFKA_BROKERS with its own registry and topic, measures the
    /// single-core token-verification rate in this process as the baseline,
    /// then sends every token and prints complaints/s, latency percentiles,
    /// the ratio to the baseline per core ingest used, and ingest's peak RSS.
    Ingest {
        /// Tokens to pre-mint and submit.
        #[arg(long, default_value_t = 50_000)]
        tokens: usize,
        /// Complaints per request.
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Verification modes to compare: pool, blocking, inline (comma-separated).
        #[arg(long, default_value = "pool,blocking,inline", value_delimiter = ',')]
        modes: Vec<String>,
        /// The ingest binary (default: next to this one).
        #[arg(long)]
        ingest_bin: Option<PathBuf>,
        /// Rounds; each round measures the baseline and every mode again, and the
        /// table shows medians (a 2-core machine running client, broker and
        /// service at once is noisy).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Load a pre-filled topic into ClickHouse with the loader, and with the
    /// naive pipe a user would write instead, in one run; print both rates.
    ///
    /// The pipe is `ricochet bench consume-json` (a console consumer on the
    /// project's librdkafka: Debian's kcat is too old for tansu) piped into
    /// curl posting `INSERT ... FORMAT JSONEachRow` to ClickHouse's HTTP port.
    Loader {
        /// Records to pre-fill the topic with.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// The loader binary (default: next to this one).
        #[arg(long)]
        loader_bin: Option<PathBuf>,
    },
    /// Score synthetic senders inserted straight into ClickHouse: a full
    /// rescore and an incremental run, before and after merging, against a
    /// plain pass over the complaints and the per-token GROUP BY, same run.
    ///
    /// Uses its own database (dropped at the end unless --keep).
    Scoring {
        /// Senders (each with a delivery report a day for 30 days).
        #[arg(long, default_value_t = 1_000_000)]
        senders: u64,
        /// Complaints spread over the senders and 30 days.
        #[arg(long, default_value_t = 50_000_000)]
        complaints: u64,
        /// Keep the bench database for inspection.
        #[arg(long)]
        keep: bool,
        /// Use this database; if it holds this bench's rows already (a run
        /// with --keep), they are reused instead of inserted again.
        #[arg(long)]
        database: Option<String>,
        /// Time only the scorer: one full rescore and one incremental run
        /// on the parts as found, without the baselines or the merge (for
        /// profiling; the figures are not comparable to a whole run's).
        #[arg(long)]
        scorer_only: bool,
    },
    /// End-to-end freshness: from a provider's 200 to the tier change in the
    /// ESP's offenders API, under steady background load.
    ///
    /// Starts ingest, loader and scoring (next to this binary) with their own
    /// registry, topics and database; sends background complaints at --rate
    /// and, spread over the run, probes that each push one sender to
    /// `throttle`; prints p50/p99 next to the baseline (probe complaints in
    /// ClickHouse, same probes).
    Freshness {
        /// Background complaints per second.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Seconds of background load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Probes (tier changes) measured during the load.
        #[arg(long, default_value_t = 40)]
        probes: usize,
        /// Scoring interval given to the scoring service, seconds.
        #[arg(long, default_value_t = 0.25)]
        scoring_interval: f64,
        /// Loader batch age limit, ms.
        #[arg(long, default_value_t = 200)]
        loader_batch_ms: u64,
    },
    /// The provider list an MTA polls: with --keys senders at throttle or
    /// above (and their ESPs) scored by the real scoring process, times
    /// sequential requests for the whole list, the changes since the
    /// current version and a 304 revalidation, against /healthz on the same
    /// server.
    ProviderList {
        /// Senders listed.
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Sequential requests per case.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
    },
    /// Ingest at twice its capacity: measures capacity (8 in flight), then
    /// offers twice that open-loop for --seconds with the default limits, and
    /// prints answers by status with their latency and ingest's peak RSS.
    Overload {
        /// Seconds of overload.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Print every record of a topic's value, one per line, then exit at the end
    /// of every partition (the console consumer of the naive pipe).
    #[command(hide = true)]
    ConsumeJson {
        /// Topic to read from the beginning.
        #[arg(long)]
        topic: String,
    },
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Freshness {
            rate,
            seconds,
            probes,
            scoring_interval,
            loader_batch_ms,
        } => {
            crate::bench_freshness::run(crate::bench_freshness::FreshnessArgs {
                rate,
                seconds: seconds.max(10),
                probes: probes.max(1),
                scoring_interval,
                loader_batch_ms,
            })
            .await
        }
        BenchCommand::Scoring {
            senders,
            complaints,
            keep,
            database,
            scorer_only,
        } => {
            let options = crate::bench_scoring::Options {
                keep,
                database,
                scorer_only,
            };
            crate::bench_scoring::run(senders, complaints, options).await
        }
        BenchCommand::ProviderList { keys, requests } => {
            crate::bench_provider_list::run(keys, requests).await
        }
        BenchCommand::Ingest {
            tokens,
            batch,
            concurrency,
            modes,
            ingest_bin,
            rounds,
        } => {
            bench_ingest(
                tokens,
                batch.max(1),
                concurrency.max(1),
                &modes,
                ingest_bin,
                rounds.max(1),
            )
            .await
        }
        BenchCommand::Overload { seconds } => bench_overload(seconds.max(1)).await,
        BenchCommand::Loader {
            records,
            loader_bin,
        } => crate::bench_loader::run(records, loader_bin).await,
        BenchCommand::ConsumeJson { topic } => crate::bench_loader::consume_json(&topic),
    }
}

/// A registry with one ESP and one provider, and `n` tokens of that ESP.
struct BenchWorld {
    dir: tempfile::TempDir,
    registry_path: PathBuf,
    esp: SigningKey,
    provider: SigningKey,
    tokens: Vec<String>,
}

fn bench_world(n: usize) -> Result<BenchWorld> {
    let dir = tempfile::tempdir()?;
    let registry_path = dir.path().join("registry.toml");
    let esp = register(
        &registry_path,
        ParticipantKind::Esp,
        "bench-esp.example",
        (Algorithm::EdDSA, "bench-esp-1"),
        &[],
    )?;
    let provider = register(
        &registry_path,
        ParticipantKind::Provider,
        "bench-mail.example",
        (Algorithm::EdDSA, "bench-mail-1"),
        &["bench.example"],
    )?;

    eprintln!("minting {n} tokens ...");
    let now = unix_now();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let req = TokenRequest::new(
                "bench-esp.example",
                &format!("sender-{}", i % 1000),
                Nature::Marketing,
                &format!("user{i}@bench.example"),
                now - 60,
            );
            mint(&esp, &req).map(|(t, _)| t)
        })
        .collect::<Result<_, _>>()?;

    Ok(BenchWorld {
        dir,
        registry_path,
        esp,
        provider,
        tokens,
    })
}

/// Complaint request bodies of `batch` tokens each.
fn batch_bodies(tokens: &[String], batch: usize) -> Vec<Vec<u8>> {
    tokens
        .chunks(batch)
        .map(|chunk| {
            let items: Vec<_> = chunk
                .iter()
                .map(|t| json!({"token": t, "code": "unwanted", "reported_at": ricochet_harness::clock::now_rfc3339()}))
                .collect();
            serde_json::to_vec(&json!({ "complaints": items })).unwrap()
        })
        .collect()
}

/// `ricochet bench overload`: ingest at its capacity, then offered twice
/// that; counts answers by status, times the refusals, reads peak RSS.
async fn bench_overload(seconds: u64) -> Result<ExitCode> {
    let bin = service_binary("ricochet-ingest", None)?;
    let kafka = KafkaConfig::from_env()?;
    let batch = 200;
    // Capacity first: closed loop, 8 in flight (the ingest bench's setting).
    let world = bench_world(40_000)?;
    let topic = format!("bench-overload-{}", std::process::id());
    ensure_topics(&kafka, &[&topic]).await?;
    // Default limits this time: the per-provider rate and the admission limit are what is measured.
    let mut ingest = ServiceProcess::spawn(
        &bin,
        "--listen",
        &[
            "--registry",
            &world.registry_path.display().to_string(),
            "--complaints-topic",
            &topic,
        ],
        &[("RICOCHET_KAFKA_BROKERS", &kafka.brokers)],
    )?;
    ingest.wait_ready().await?;
    let bearer = format!(
        "Bearer {}",
        mint_bearer(
            &world.provider,
            "bench-mail.example",
            "ricochet-ingest",
            unix_now(),
            300
        )?
    );
    let bodies = Arc::new(batch_bodies(&world.tokens[..20_000], batch));
    eprintln!(
        "capacity: {} requests of {batch}, 8 in flight ...",
        bodies.len()
    );
    let started = Instant::now();
    let (_, accepted) = drive(&ingest.url, &bearer, bodies, 8).await?;
    let capacity = accepted as f64 / started.elapsed().as_secs_f64();
    let rss_at_capacity = ingest.peak_rss_mib()?;

    // Twice that, open loop: a request every interval whatever the answers.
    let offered_rps = 2.0 * capacity / batch as f64;
    let bodies = batch_bodies(&world.tokens[20_000..], batch);
    eprintln!(
        "overload: {:.0} complaints/s offered ({offered_rps:.0} requests/s) for {seconds} s ...",
        2.0 * capacity
    );
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / offered_rps));
    let mut tasks = vec![];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut i = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        let body = bodies[i % bodies.len()].clone();
        i += 1;
        let (http, url, bearer) = (
            http.clone(),
            format!("{}/v1/complaints", ingest.url),
            bearer.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let answer = post_body(&http, &url, &bearer, body).await;
            let status = answer.map_or(0, |a| a.status.as_u16());
            (status, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut by_status: std::collections::BTreeMap<u16, Vec<f64>> = Default::default();
    for t in tasks {
        let (status, ms) = t.await?;
        by_status.entry(status).or_default().push(ms);
    }
    let rss = ingest.peak_rss_mib()?;
    ingest.stop();
    println!();
    println!("ricochet bench overload: capacity {capacity:.0} complaints/s (8 in flight), then {:.0} offered for {seconds} s ({} requests of {batch})", 2.0 * capacity, i);
    println!("| answer | requests | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (status, ms) in &mut by_status {
        ms.sort_by(|a, b| a.total_cmp(b));
        let name = if *status == 0 {
            "no answer".to_string()
        } else {
            status.to_string()
        };
        println!(
            "| {name} | {} | {:.1} | {:.1} |",
            ms.len(),
            percentile(ms, 0.5),
            percentile(ms, 0.99)
        );
    }
    println!("ingest peak RSS: {rss_at_capacity:.1} MiB at capacity, {rss:.1} MiB after the overload ({:.2}x)", rss / rss_at_capacity);
    Ok(ExitCode::SUCCESS)
}

/// Figures of one drive of the service.
struct Drive {
    mode: String,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cores_used: f64,
    rss_mib: f64,
    accepted: usize,
}

async fn bench_ingest(
    n: usize,
    batch: usize,
    concurrency: usize,
    modes: &[String],
    ingest_bin: Option<PathBuf>,
    rounds: usize,
) -> Result<ExitCode> {
    let bin = service_binary("ricochet-ingest", ingest_bin)?;
    let kafka = KafkaConfig::from_env()?;
    let BenchWorld {
        dir: _dir,
        registry_path,
        esp,
        provider,
        tokens,
    } = bench_world(n)?;
    let registry = Registry::load(&registry_path)?;
    let bodies = Arc::new(batch_bodies(&tokens, batch));
    let mut drives = vec![];
    let mut baselines = vec![];
    for round in 1..=rounds {
        let (verify_rate, signature_rate) = baseline(&tokens, &registry, &esp)?;
        let all_cores = baseline_all_cores(&tokens, &registry);
        eprintln!("round {round}/{rounds}: baseline: one core alone {verify_rate:.0} tokens/s verified ({signature_rate:.0} bare signatures/s); all cores at once {all_cores:.0} per core");
        baselines.push((verify_rate, signature_rate, all_cores));
        for mode in modes {
            let topic = format!("bench-complaints-{}-{}", mode, std::process::id());
            ensure_topics(&kafka, &[&topic]).await?;
            let mut ingest = start_ingest(&bin, &registry_path, &topic, mode, &kafka)?;
            ingest.wait_ready().await?;
            let bearer = format!(
                "Bearer {}",
                mint_bearer(
                    &provider,
                    "bench-mail.example",
                    "ricochet-ingest",
                    unix_now(),
                    300
                )?
            );
            eprintln!("driving ingest (verify mode {mode}): {} requests of {batch}, {concurrency} in flight ...", bodies.len());
            let cpu_before = ingest.cpu_seconds()?;
            let started = Instant::now();
            let (latencies, accepted) =
                drive(&ingest.url, &bearer, bodies.clone(), concurrency).await?;
            let wall = started.elapsed().as_secs_f64();
            let cpu = ingest.cpu_seconds()? - cpu_before;
            let rss = ingest.peak_rss_mib()?;
            ingest.stop();
            drives.push(Drive {
                mode: mode.clone(),
                per_sec: accepted as f64 / wall,
                p50_ms: percentile(&latencies, 0.50),
                p99_ms: percentile(&latencies, 0.99),
                cores_used: cpu / wall,
                rss_mib: rss,
                accepted,
            });
        }
    }
    let verify_rate = median(baselines.iter().map(|b| b.0));
    let signature_rate = median(baselines.iter().map(|b| b.1));
    let all_cores_rate = median(baselines.iter().map(|b| b.2));

    println!();
    println!("ricochet bench ingest: {n} tokens, batch {batch}, concurrency {concurrency}, {} cores, medians of {rounds} round(s)", std::thread::available_parallelism().map_or(0, |c| c.get()));
    println!("baseline A (this process, one core alone): {verify_rate:.0} token verifications/s ({signature_rate:.0} bare Ed25519 signature checks/s)");
    println!("baseline B (this process, every core verifying at once): {all_cores_rate:.0} token verifications/s per core");
    println!();
    println!("| verify mode | complaints/s | p50 ms | p99 ms | ingest cores used | per core / A | per core / B | ingest peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for mode in modes {
        let of = |f: fn(&Drive) -> f64| median(drives.iter().filter(|d| &d.mode == mode).map(f));
        let (per_sec, cores) = (of(|d| d.per_sec), of(|d| d.cores_used));
        let per_core = of(|d| d.per_sec / d.cores_used.max(0.01));
        println!(
            "| {mode} | {per_sec:.0} | {:.1} | {:.1} | {cores:.2} | {:.0} % | {:.0} % | {:.1} |",
            of(|d| d.p50_ms),
            of(|d| d.p99_ms),
            per_core / verify_rate * 100.0,
            per_core / all_cores_rate * 100.0,
            of(|d| d.rss_mib),
        );
    }
    if drives.iter().any(|d| d.accepted != n) {
        bail!("not every token was accepted; see the table");
    }
    Ok(ExitCode::SUCCESS)
}

/// Baseline rates on one core in this process: full token verification
/// (the code path ingest runs per item) and bare Ed25519 signature checks.
fn baseline(tokens: &[String], registry: &Registry, esp: &SigningKey) -> Result<(f64, f64)> {
    let opts = VerifyOptions::now();
    let sample = &tokens[..tokens.len().min(20_000)];
    let started = Instant::now();
    for t in sample {
        verify(t, registry, &opts).context("baseline verification")?;
    }
    let verify_rate = sample.len() as f64 / started.elapsed().as_secs_f64();
    let key = esp.verifying_key();
    let inputs: Vec<(&str, Vec<u8>)> = sample
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (input, base64_decode(sig))
        })
        .collect();
    let started = Instant::now();
    for (input, sig) in &inputs {
        anyhow::ensure!(key.verify(input.as_bytes(), sig), "baseline signature");
    }
    Ok((
        verify_rate,
        inputs.len() as f64 / started.elapsed().as_secs_f64(),
    ))
}

/// Token verifications per second per core when every core verifies at once
/// (on SMT or shared cores this is lower than one core alone).
fn baseline_all_cores(tokens: &[String], registry: &Registry) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let sample = &tokens[..tokens.len().min(20_000 * cores)];
    let opts = VerifyOptions::now();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in sample.chunks(sample.len().div_ceil(cores)) {
            scope.spawn(move || {
                for t in chunk {
                    let _ = verify(t, registry, &opts);
                }
            });
        }
    });
    sample.len() as f64 / started.elapsed().as_secs_f64() / cores as f64
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_default()
}

/// Sends every body with `concurrency` requests in flight; returns sorted latencies (ms) and accepted items.
async fn drive(
    url: &str,
    bearer: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<(Vec<f64>, usize)> {
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (http, next, bodies) = (http.clone(), next.clone(), bodies.clone());
        let (url, bearer) = (format!("{url}/v1/complaints"), bearer.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            let mut accepted = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let started = Instant::now();
                let answer = post_body(&http, &url, &bearer, body.clone()).await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                accepted += answer.accepted() as usize;
                answer.ok()?;
            }
            anyhow::Ok((latencies, accepted))
        }));
    }
    let mut all = vec![];
    let mut accepted = 0;
    for t in tasks {
        let (l, a) = t.await??;
        all.extend(l);
        accepted += a;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((all, accepted))
}

/// Starts `ricochet-ingest` for the ingest bench on a free loopback port.
fn start_ingest(
    bin: &Path,
    registry: &Path,
    topic: &str,
    mode: &str,
    kafka: &KafkaConfig,
) -> Result<ServiceProcess> {
    ServiceProcess::spawn(
        bin,
        "--listen",
        &[
            "--registry",
            &registry.display().to_string(),
            "--complaints-topic",
            topic,
            "--verify-mode",
            mode,
            "--rate-per-sec",
            "1000000",
            "--burst",
            "1000000",
        ],
        &[("RICOCHET_KAFKA_BROKERS", &kafka.brokers)],
    )
}

/// A bench's own database on the configured ClickHouse, migrated.
pub async fn bench_database(name: &str) -> Result<ClickHouseConfig> {
    let ch = ClickHouseConfig::from_env()?.with_database(name);
    Migrator::new(ch.clone())?
        .run()
        .await
        .context("migrating the bench database")?;
    Ok(ch)
}
