//! `ricochet bench provider-list`: how fast the scoring service answers a
//! provider's MTA polling the list of everything at `throttle` or above,
//! with --keys senders listed (plus their ESPs). The real scoring process
//! scores synthetic rows inserted straight into ClickHouse; the client then
//! sends sequential requests for the whole list, the changes since the
//! current version, and a `304` revalidation, against the baseline of
//! `/healthz` on the same server in the same run.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::ParticipantKind;
use ricochet_storage::ClickHouseConfig;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, SigningKey, VerifyingKey};
use serde_json::Value;

use crate::api::{ricochet_keys, signed_get};
use crate::participants::{own_key, register};
use crate::process::{service_binary, ServiceProcess};
use crate::stats::percentile;

const PROVIDER: &str = "list-mail.example";
const AUDIENCE: &str = "ricochet-provider-api";
/// ESPs the listed senders are spread over.
const ESPS: u64 = 20;
/// Complaints per listed sender, on 10,000 delivered: past `suspend`.
const COMPLAINTS_EACH: u64 = 80;

/// Runs the bench and prints its table.
pub async fn run(keys: u64, requests: usize) -> Result<ExitCode> {
    anyhow::ensure!(
        keys >= 1 && requests >= 10,
        "need --keys >= 1 and --requests >= 10"
    );
    let scoring_bin = service_binary("ricochet-scoring", None)?;
    let run_id = std::process::id();
    let ch = crate::bench::bench_database(&format!("bench_provider_list_{run_id}")).await?;
    let result = measure(&ch, &scoring_bin, run_id, keys, requests).await;
    crate::bench::drop_bench_database(&ch).await?;
    result
}

/// `keys` senders over [`ESPS`] ESPs, each at 10,000 delivered and
/// [`COMPLAINTS_EACH`] complaints in the last hour.
async fn fill(ch: &ClickHouseConfig, keys: u64) -> Result<()> {
    let sender = "concat('sender-', toString(s))";
    let esp = format!("concat('esp-', toString(s % {ESPS}), '.example')");
    let client = ch.client();
    client
        .query(&format!(
            "INSERT INTO deliveries (esp, sender, provider, hour, delivered, received_at)
             SELECT {esp}, {sender}, '{PROVIDER}', toStartOfHour(now()), 10000, now64(3)
             FROM (SELECT number AS s FROM numbers({keys}))"
        ))
        .execute()
        .await?;
    client
        .query(&format!(
            "INSERT INTO complaints (jti, esp, sender, provider, code, nature, campaign, from_domain,
                                     reporter, recipient_proven, token_iat, token_exp, reported_at,
                                     received_at)
             SELECT concat('pl-', toString(number)), {esp}, {sender}, '{PROVIDER}', 'unwanted',
                    'marketing', '', '', '', true, now() - 120, now() + 86400,
                    now64(3) - 60, now64(3) - 60
             FROM (SELECT number, intDiv(number, {COMPLAINTS_EACH}) AS s
                   FROM numbers({}))",
            keys * COMPLAINTS_EACH
        ))
        .execute()
        .await?;
    Ok(())
}

/// The scoring service on `ch` with a registry of one provider; returns
/// it and the provider's key.
async fn start_scoring(
    ch: &ClickHouseConfig,
    bin: &std::path::Path,
    run_id: u32,
    dir: &std::path::Path,
) -> Result<(ServiceProcess, SigningKey)> {
    let registry = dir.join("registry.toml");
    let kind = ParticipantKind::Provider;
    let provider = register(
        &registry,
        kind,
        PROVIDER,
        (Algorithm::EdDSA, "list-mail-1"),
        &[],
    )?;
    let ricochet_key = dir.join("ricochet.jwk");
    own_key(&ricochet_key, "ricochet-bench")?;
    let kafka = KafkaConfig::from_env()?;
    let (penalties, feedback) = (
        format!("list-{run_id}-penalties"),
        format!("list-{run_id}-feedback"),
    );
    ensure_topics(&kafka, &[&penalties, &feedback]).await?;
    let (registry_s, key_s) = (
        registry.display().to_string(),
        ricochet_key.display().to_string(),
    );
    let args = [
        "--registry",
        &registry_s,
        "--signing-key",
        &key_s,
        "--interval-secs",
        "1",
        "--penalties-topic",
        &penalties,
        "--feedback-topic",
        &feedback,
    ];
    let envs = [
        ("RICOCHET_KAFKA_BROKERS", kafka.brokers.as_str()),
        ("RICOCHET_CLICKHOUSE_URL", ch.url.as_str()),
        ("RICOCHET_CLICKHOUSE_DATABASE", ch.database.as_str()),
    ];
    let mut scoring = ServiceProcess::spawn(bin, "--listen", &args, &envs)?;
    scoring.wait_ready().await?;
    Ok((scoring, provider))
}

async fn measure(
    ch: &ClickHouseConfig,
    bin: &std::path::Path,
    run_id: u32,
    keys: u64,
    requests: usize,
) -> Result<ExitCode> {
    eprintln!("inserting {keys} senders with {COMPLAINTS_EACH} complaints each ...");
    fill(ch, keys).await?;
    let dir = tempfile::tempdir()?;
    let (mut scoring, provider) = start_scoring(ch, bin, run_id, dir.path()).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/reputation/listed", scoring.url);
    let jwks = ricochet_keys(&http, &scoring.url, None).await?;
    let list = wait_listed(&http, &url, &provider, &jwks, keys).await?;
    let version = list["version"].as_i64().context("a version")?;
    let listed = list["listed"].as_array().map_or(0, Vec::len);
    let bearer = mint_bearer(&provider, PROVIDER, AUDIENCE, unix_now(), 290)?;
    let etag = format!("\"{version}\"");
    let cases: [(&str, String, Option<&str>); 4] = [
        (
            "baseline: GET /healthz",
            format!("{}/healthz", scoring.url),
            None,
        ),
        ("whole list", url.clone(), None),
        (
            "changes since the current version",
            format!("{url}?since={version}"),
            None,
        ),
        (
            "If-None-Match: current ETag (304)",
            url.clone(),
            Some(&etag),
        ),
    ];
    println!();
    println!("provider list bench: {listed} keys listed ({keys} senders and their ESPs), {requests} sequential requests per case, same server");
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>10} {:>11}",
        "case", "p50 ms", "p99 ms", "max ms", "bytes", "p99/base"
    );
    let mut base_p99 = 0.0;
    for (name, case_url, if_none_match) in cases {
        let (lat, bytes) = timed_gets(&http, &case_url, &bearer, if_none_match, requests).await?;
        let (p50, p99, max) = (
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1],
        );
        if base_p99 == 0.0 {
            base_p99 = p99;
        }
        println!(
            "{name:<36} {p50:>9.2} {p99:>9.2} {max:>9.2} {bytes:>10} {:>10.1}x",
            p99 / base_p99
        );
    }
    scoring.stop();
    Ok(ExitCode::SUCCESS)
}

/// Waits until the list holds `keys` senders; the list, verified like an
/// MTA verifies it, once: the timed requests only read the bytes.
async fn wait_listed(
    http: &reqwest::Client,
    url: &str,
    provider: &SigningKey,
    jwks: &BTreeMap<String, VerifyingKey>,
    keys: u64,
) -> Result<Value> {
    eprintln!("waiting for the list to hold {keys} senders ...");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = signed_get(http, url, (provider, PROVIDER, AUDIENCE), jwks).await;
        if let Ok(list) = list {
            let senders = list["listed"]
                .as_array()
                .map_or(0, |l| l.iter().filter(|r| r[0] == "sender").count());
            if senders as u64 >= keys {
                return Ok(list);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the list did not reach {keys} senders in 180 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `n` sequential GETs: sorted latencies (ms) and the last body's size.
async fn timed_gets(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    if_none_match: Option<&str>,
    n: usize,
) -> Result<(Vec<f64>, usize)> {
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let mut req = http.get(url).bearer_auth(bearer);
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        lat.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            status.is_success() || status == 304,
            "{url} answered {status}"
        );
        bytes = body.len();
    }
    lat.sort_by(f64::total_cmp);
    Ok((lat, bytes))
}
