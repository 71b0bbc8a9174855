//! `ricochet bench overload`: what ingest answers when offered twice what
//! it can take, and what that costs it in memory.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ingest::post_body;
use crate::process::{service_binary, ServiceProcess};
use crate::stats::percentile;
use anyhow::Result;
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;

use crate::bench::{batch_bodies, bench_world, drive};

/// `ricochet bench overload`: ingest at its capacity, then offered twice
/// that; counts answers by status, times the refusals, reads peak RSS.
pub async fn bench_overload(seconds: u64) -> Result<ExitCode> {
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
    let url = format!("{}/v1/complaints", ingest.url);
    let (sent, by_status) = open_loop(&url, &bearer, &bodies, offered_rps, seconds).await?;
    let rss = ingest.peak_rss_mib()?;
    ingest.stop();
    println!();
    println!("ricochet bench overload: capacity {capacity:.0} complaints/s (8 in flight), then {:.0} offered for {seconds} s ({sent} requests of {batch})", 2.0 * capacity);
    println!("| answer | requests | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (status, ms) in by_status {
        let name = match status {
            0 => "no answer".to_string(),
            s => s.to_string(),
        };
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        println!("| {name} | {} | {p50:.1} | {p99:.1} |", ms.len());
    }
    println!("ingest peak RSS: {rss_at_capacity:.1} MiB at capacity, {rss:.1} MiB after the overload ({:.2}x)", rss / rss_at_capacity);
    Ok(ExitCode::SUCCESS)
}

/// Sends a request every 1/`rate` s for `seconds`, whatever the answers;
/// how many were sent, and per status (0: no answer) the sorted latencies.
async fn open_loop(
    url: &str,
    bearer: &str,
    bodies: &[Vec<u8>],
    rate: f64,
    seconds: u64,
) -> Result<(usize, std::collections::BTreeMap<u16, Vec<f64>>)> {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut tasks = vec![];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tick.tick().await;
        let body = bodies[tasks.len() % bodies.len()].clone();
        let (http, url, bearer) = (http.clone(), url.to_string(), bearer.to_string());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let answer = post_body(&http, &url, &bearer, body).await;
            let status = answer.map_or(0, |a| a.status.as_u16());
            (status, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let sent = tasks.len();
    let mut by_status: std::collections::BTreeMap<u16, Vec<f64>> = Default::default();
    for t in tasks {
        let (status, ms) = t.await?;
        by_status.entry(status).or_default().push(ms);
    }
    for ms in by_status.values_mut() {
        ms.sort_by(|a, b| a.total_cmp(b));
    }
    Ok((sent, by_status))
}
