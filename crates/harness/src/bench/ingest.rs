//! `ricochet bench ingest`: ingest's complaints/s per core used against the
//! verification rates of this process (baselines A, B and C, in
//! [`super::verify_rates`]), per verify mode and signature check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::process::{service_binary, ServiceProcess};
use crate::stats::{median, percentile};
use anyhow::{bail, Result};
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::Registry;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::SigningKey;

use super::verify_rates::{a_key_per_token, baselines, batch_sizes, Baselines, DISTINCT_KEYS};
use super::{batch_bodies, bench_world, drive, BenchWorld};

/// What `ricochet bench ingest` was asked to run.
pub(super) struct IngestBench {
    pub tokens: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub modes: Vec<String>,
    pub checks: Vec<String>,
    pub verify_batch: usize,
    pub ingest_bin: Option<PathBuf>,
    pub rounds: usize,
}

/// What every drive of ingest needs.
struct DriveSetup<'a> {
    bin: &'a Path,
    verify_batch: usize,
    registry: &'a Path,
    kafka: &'a KafkaConfig,
    provider: &'a SigningKey,
}

/// Starts ingest in verify mode `mode` and signature check `check` on a
/// fresh topic and drives it with every body, `concurrency` in flight, in
/// round `round`.
async fn drive_mode(
    s: &DriveSetup<'_>,
    round: usize,
    (mode, check): (&str, &str),
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<Drive> {
    let topic = format!("bench-complaints-{mode}-{check}-{}", std::process::id());
    ensure_topics(s.kafka, &[&topic]).await?;
    let flags = IngestFlags {
        mode,
        check,
        verify_batch: s.verify_batch,
    };
    let mut ingest = start_ingest(s.bin, s.registry, &topic, &flags, s.kafka)?;
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
    eprintln!("driving ingest (verify mode {mode}, signature check {check}): {batch} requests, {concurrency} in flight ...");
    let cpu_before = ingest.cpu_seconds()?;
    let started = Instant::now();
    let (latencies, accepted) = drive(&ingest.url, &bearer, bodies, concurrency).await?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = ingest.cpu_seconds()? - cpu_before;
    let rss = ingest.peak_rss_mib()?;
    ingest.stop();
    Ok(Drive {
        round,
        mode: mode.to_string(),
        check: check.to_string(),
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
    /// The round it ran in (index into the rounds' baselines).
    round: usize,
    mode: String,
    check: String,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cores_used: f64,
    rss_mib: f64,
    accepted: usize,
}

impl Drive {
    /// Complaints/s per core of CPU time ingest used.
    fn per_core(&self) -> f64 {
        self.per_sec / self.cores_used.max(0.01)
    }

    /// [`Drive::per_core`] as a percentage of a baseline `rate`.
    fn percent_of(&self, rate: f64) -> f64 {
        self.per_core() / rate * 100.0
    }
}

pub(super) async fn bench_ingest(b: IngestBench) -> Result<ExitCode> {
    let bin = service_binary("ricochet-ingest", b.ingest_bin.clone())?;
    let kafka = KafkaConfig::from_env()?;
    let BenchWorld {
        dir: _dir,
        registry_path,
        provider,
        tokens,
    } = bench_world(b.tokens)?;
    let registry = Registry::load(&registry_path)?;
    let bodies = Arc::new(batch_bodies(&tokens, b.batch));
    let setup = DriveSetup {
        bin: &bin,
        verify_batch: b.verify_batch,
        registry: &registry_path,
        kafka: &kafka,
        provider: &provider,
    };
    let (mut drives, mut rounds) = (vec![], vec![]);
    for round in 0..b.rounds {
        // The machine's speed drifts by more than the effects measured here,
        // so a round's baselines bracket its drives: measured before and
        // after, and each drive compared with their mean.
        let before = baselines(&tokens, &registry, b.verify_batch)?;
        say_baselines(round, b.rounds, "before", &before);
        for mode in &b.modes {
            for check in &b.checks {
                let pair = (mode.as_str(), check.as_str());
                let d = drive_mode(&setup, round, pair, bodies.clone(), b.concurrency).await?;
                drives.push(d);
            }
        }
        let after = baselines(&tokens, &registry, b.verify_batch)?;
        say_baselines(round, b.rounds, "after", &after);
        rounds.push(before.mean(&after));
        for d in drives.iter().filter(|d| d.round == round) {
            let base = &rounds[round];
            eprintln!(
                "round {}/{}: {} {}: {:.0} complaints/s per core used, {:.0} % of A, {:.0} % of C",
                round + 1,
                b.rounds,
                d.mode,
                d.check,
                d.per_core(),
                d.percent_of(base.single),
                d.percent_of(base.batch)
            );
        }
    }
    eprintln!("measuring batch sizes ...");
    let sizes = batch_sizes(&tokens, &registry, &[8, 32, 64, 128, 256, 1000])?;
    eprintln!("measuring batches of {DISTINCT_KEYS} ESP keys, a key per token ...");
    let distinct = a_key_per_token()?;
    print_report(&b, &rounds, &drives, [&sizes, &distinct]);
    if drives.iter().any(|d| d.accepted != b.tokens) {
        bail!("not every token was accepted; see the table");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on stderr: a round's baselines, measured `when` its drives.
fn say_baselines(round: usize, rounds: usize, when: &str, base: &Baselines) {
    eprintln!(
        "round {}/{rounds}: baselines {when} the drives (tokens/s): A {:.0}, B {:.0} per core, C {:.0}, R {:.0}",
        round + 1,
        base.single,
        base.single_all_cores,
        base.batch,
        base.single_ring
    );
}

/// The figures, as Markdown for BENCHMARKS.md.
fn print_report(
    b: &IngestBench,
    rounds: &[Baselines],
    drives: &[Drive],
    [sizes, distinct]: [&[String]; 2],
) {
    let a = median(rounds.iter().map(|r| r.single));
    let all_cores = median(rounds.iter().map(|r| r.single_all_cores));
    let c = median(rounds.iter().map(|r| r.batch));
    let r = median(rounds.iter().map(|r| r.single_ring));
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!();
    println!("ricochet bench ingest: {} tokens of {} ESP keys, batch {}, concurrency {}, verify batch {}, {cores} cores, medians of {} round(s)", b.tokens, super::BENCH_ESPS, b.batch, b.concurrency, b.verify_batch, b.rounds);
    println!("Each round measures the baselines before and after its drives; a drive's ratios are to their mean.");
    println!("baseline A (this process, one core alone, one token at a time): {a:.0} token verifications/s");
    println!(
        "baseline B (this process, every core at once, one at a time): {all_cores:.0} per core"
    );
    println!("baseline C (this process, one core alone, batches of {}): {c:.0} token verifications/s ({:.2} x A)", b.verify_batch, c / a);
    println!("baseline R (this process, one core alone, one at a time with Ed25519 on ring, as ingest verified before batch verification): {r:.0} token verifications/s ({:.2} x A)", r / a);
    println!();
    println!("| verify mode | signature check | complaints/s | p50 ms | p99 ms | ingest cores used | per core / A | per core / R | per core / C | ingest peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in &b.modes {
        for check in &b.checks {
            let mine = || {
                drives
                    .iter()
                    .filter(|d| &d.mode == mode && &d.check == check)
            };
            let of = |f: fn(&Drive) -> f64| median(mine().map(f));
            // Each drive against its own round's baselines, then the median.
            let against = |f: fn(&Baselines) -> f64| {
                median(mine().map(|d| d.percent_of(f(&rounds[d.round]))))
            };
            println!(
                "| {mode} | {check} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} % | {:.0} % | {:.0} % | {:.1} |",
                of(|d| d.per_sec),
                of(|d| d.p50_ms),
                of(|d| d.p99_ms),
                of(|d| d.cores_used),
                against(|r| r.single),
                against(|r| r.single_ring),
                against(|r| r.batch),
                of(|d| d.rss_mib),
            );
        }
    }
    print_sizes("Batch size, one core, after the last round: valid tokens/s and the ratio to single checks; tokens whose signature fails (each batch falls back to single checks): tokens/s and the cost against checking them one at a time. Each ratio is the median of 3 pairs, each timing single checks and batches in alternating slices of the same tokens", sizes);
    print_sizes(&format!("The same with tokens of {DISTINCT_KEYS} ESPs in turn, a key per token in each batch (the worst case: a forger picks any registered key for free)"), distinct);
}

/// One table of batch sizes under its caption.
fn print_sizes(caption: &str, lines: &[String]) {
    println!();
    println!("{caption}");
    println!();
    println!("| batch | valid/s | x single | all-invalid/s | cost x single |");
    println!("|---:|---:|---:|---:|---:|");
    for line in lines {
        println!("{line}");
    }
}

/// How one drive starts ingest.
struct IngestFlags<'a> {
    mode: &'a str,
    check: &'a str,
    verify_batch: usize,
}

/// Starts `ricochet-ingest` for the ingest bench on a free loopback port.
fn start_ingest(
    bin: &Path,
    registry: &Path,
    topic: &str,
    flags: &IngestFlags<'_>,
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
            flags.mode,
            "--signature-check",
            flags.check,
            "--verify-batch",
            &flags.verify_batch.to_string(),
            "--rate-per-sec",
            "1000000",
            "--burst",
            "1000000",
        ],
        &[("RICOCHET_KAFKA_BROKERS", &kafka.brokers)],
    )
}
