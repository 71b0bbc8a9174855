//! `ricochet bench ingest`: ingest's complaints/s per core used against the
//! verification rates of this process (baselines A and B), per verify mode.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::process::{service_binary, ServiceProcess};
use crate::stats::percentile;
use anyhow::{bail, Context, Result};
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::Registry;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{verify, SigningKey, VerifyOptions};

use super::{batch_bodies, bench_world, drive, BenchWorld};

/// What every drive of ingest needs.
struct DriveSetup<'a> {
    bin: &'a Path,
    registry: &'a Path,
    kafka: &'a KafkaConfig,
    provider: &'a SigningKey,
}

/// Starts ingest in verify mode `mode` on a fresh topic and drives it with
/// every body, `concurrency` in flight.
async fn drive_mode(
    s: &DriveSetup<'_>,
    mode: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<Drive> {
    let topic = format!("bench-complaints-{}-{}", mode, std::process::id());
    ensure_topics(s.kafka, &[&topic]).await?;
    let mut ingest = start_ingest(s.bin, s.registry, &topic, mode, s.kafka)?;
    ingest.wait_ready().await?;
    let token = mint_bearer(
        s.provider,
        "bench-mail.example",
        "ricochet-ingest",
        unix_now(),
        300,
    )?;
    let bearer = format!("Bearer {token}");
    let batch = bodies.len();
    eprintln!("driving ingest (verify mode {mode}): {batch} requests, {concurrency} in flight ...");
    let cpu_before = ingest.cpu_seconds()?;
    let started = Instant::now();
    let (latencies, accepted) = drive(&ingest.url, &bearer, bodies, concurrency).await?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = ingest.cpu_seconds()? - cpu_before;
    let rss = ingest.peak_rss_mib()?;
    ingest.stop();
    Ok(Drive {
        mode: mode.to_string(),
        per_sec: accepted as f64 / wall,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cores_used: cpu / wall,
        rss_mib: rss,
        accepted,
    })
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

pub(super) async fn bench_ingest(
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
            let setup = DriveSetup {
                bin: &bin,
                registry: &registry_path,
                kafka: &kafka,
                provider: &provider,
            };
            drives.push(drive_mode(&setup, mode, bodies.clone(), concurrency).await?);
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
