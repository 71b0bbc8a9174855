//! `ricochet bench milter`: what the milters cost Postfix. Three Postfix
//! instances of their own on loopback take the same messages over SMTP
//! and discard them after queueing: one without a milter (the baseline),
//! one with the sign milter, one with the check milter (each message
//! carrying a token for its recipient). Rounds alternate the three; the
//! table gives messages/s, latency per message, each milter's CPU per
//! message, and the ratio to the baseline of the same round.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ricochet_registry::ParticipantKind;
use ricochet_token::key_file::write_private;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, Nature, TokenRequest};

use crate::participants::register;
use crate::postfix::{Postfix, Route, Settings};
use crate::process::{free_port, service_binary, start_milter, ServiceProcess};
use crate::smtp::Session;
use crate::stats::{median, percentile};

const ESP: &str = "esp-bench.example";

/// One configuration's figures in one round.
struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    milter_cpu_us: Option<f64>,
}

/// The two milters, with their files under `dir`.
async fn milters(dir: &Path) -> Result<[(ServiceProcess, SocketAddr); 2]> {
    let registry = dir.join("registry.toml");
    let key = register(
        &registry,
        ParticipantKind::Esp,
        ESP,
        (Algorithm::EdDSA, "bench-esp"),
        &[],
    )?;
    write_private(&dir.join("esp.jwk"), &key.private_jwk())?;
    std::fs::write(
        dir.join("senders.toml"),
        "[envelope]\n\"@shop.example\" = \"shop-1\"\n",
    )?;
    let d = |n: &str| dir.join(n).display().to_string();
    let sign = [
        "--esp",
        ESP,
        "--key",
        &d("esp.jwk"),
        "--send-log",
        &d("sent.log"),
        "--senders",
        &d("senders.toml"),
    ];
    let check = [
        "--registry",
        &d("registry.toml"),
        "--counts-file",
        &d("counts.json"),
    ];
    let bin = service_binary("ricochet-milter", None)?;
    Ok([
        start_milter(&bin, "sign", &sign).await?,
        start_milter(&bin, "check", &check).await?,
    ])
}

/// The messages: recipient and text, with a token for its recipient when `signed`.
fn messages(dir: &Path, count: usize, signed: bool) -> Result<Vec<(String, String)>> {
    let key = ricochet_token::SigningKey::from_file(&dir.join("esp.jwk"))?;
    (0..count)
        .map(|i| {
            let rcpt = format!("user{i}@bench.example");
            let mut text = format!(
                "From: Shop <news@shop.example>\nTo: {rcpt}\nSubject: offer {i}\n\
                 Message-Id: <{i}.bench@shop.example>\nMessage-Nature: marketing\n"
            );
            if signed {
                let req = TokenRequest::new(ESP, "shop-1", Nature::Marketing, &rcpt, unix_now());
                text += &format!("Complaint-Token: {}\n", mint(&key, &req)?.0);
            }
            text += "\nHello, this is a message of about a kilobyte.\n";
            text += &"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n".repeat(16);
            Ok((rcpt, text))
        })
        .collect()
}

/// Sends every message to `smtp` over `concurrency` sessions; the wall
/// time and each message's latency.
async fn drive(
    smtp: SocketAddr,
    messages: Arc<Vec<(String, String)>>,
    concurrency: usize,
) -> Result<(Duration, Vec<f64>)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let messages = messages.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = Session::connect(smtp).await?;
            let mut latencies = Vec::new();
            for (rcpt, text) in messages.iter().skip(worker).step_by(concurrency) {
                let t = Instant::now();
                let out = session
                    .send(
                        "news@shop.example",
                        std::slice::from_ref(rcpt),
                        text.as_bytes(),
                    )
                    .await?;
                anyhow::ensure!(out.accepted.len() == 1, "not accepted: {:?}", out.refused);
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            session.quit().await?;
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a sender task")??);
    }
    Ok((started.elapsed(), all))
}

async fn measure(
    smtp: SocketAddr,
    messages: Arc<Vec<(String, String)>>,
    concurrency: usize,
    milter: Option<&ServiceProcess>,
) -> Result<Figures> {
    let cpu_before = milter.map(|m| m.cpu_seconds()).transpose()?;
    let (wall, mut latencies) = drive(smtp, messages.clone(), concurrency).await?;
    let cpu_after = milter.map(|m| m.cpu_seconds()).transpose()?;
    latencies.sort_by(f64::total_cmp);
    let n = messages.len() as f64;
    Ok(Figures {
        per_sec: n / wall.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        milter_cpu_us: cpu_before.zip(cpu_after).map(|(b, a)| (a - b) / n * 1e6),
    })
}

/// Runs the bench and prints its table.
pub async fn run(count: usize, concurrency: usize, rounds: usize) -> Result<ExitCode> {
    anyhow::ensure!(
        count >= 100 && concurrency >= 1 && rounds >= 1,
        "need --messages >= 100"
    );
    let dir = tempfile::tempdir()?;
    let [(sign, sign_addr), (check, check_addr)] = milters(dir.path()).await?;
    let root = dir.path().join("postfix");
    let mut instances = Vec::new();
    for (name, milter) in [
        ("plain", None),
        ("sign", Some(sign_addr)),
        ("check", Some(check_addr)),
    ] {
        let settings = Settings {
            name: name.into(),
            port: free_port()?,
            route: Route::Discard,
            milter,
        };
        instances.push(Postfix::start(&root, &settings).await?);
    }
    let plain = Arc::new(messages(dir.path(), count, false)?);
    let signed = Arc::new(messages(dir.path(), count, true)?);
    println!("{count} messages per run, {concurrency} SMTP sessions, {rounds} round(s); Postfix discards after queueing");
    let mut table: Vec<[Figures; 3]> = Vec::new();
    for round in 1..=rounds {
        let base = measure(instances[0].smtp, plain.clone(), concurrency, None).await?;
        let s = measure(instances[1].smtp, plain.clone(), concurrency, Some(&sign)).await?;
        let c = measure(instances[2].smtp, signed.clone(), concurrency, Some(&check)).await?;
        eprintln!(
            "round {round}/{rounds}: {:.0} / {:.0} / {:.0} msg/s",
            base.per_sec, s.per_sec, c.per_sec
        );
        table.push([base, s, c]);
    }
    print_table(&table);
    Ok(ExitCode::SUCCESS)
}

fn print_table(rounds: &[[Figures; 3]]) {
    println!(
        "{:<22} {:>9} {:>8} {:>8} {:>16} {:>18}",
        "Postfix", "msg/s", "p50 ms", "p99 ms", "milter CPU µs/msg", "ratio to no milter"
    );
    for (i, name) in ["no milter (baseline)", "sign milter", "check milter"]
        .iter()
        .enumerate()
    {
        let col = |f: &dyn Fn(&Figures) -> f64| median(rounds.iter().map(|r| f(&r[i])));
        let ratio = median(rounds.iter().map(|r| r[i].per_sec / r[0].per_sec));
        let cpu = rounds[0][i].milter_cpu_us.map_or("-".to_string(), |_| {
            format!("{:.0}", col(&|f| f.milter_cpu_us.unwrap_or(0.0)))
        });
        println!(
            "{name:<22} {:>9.0} {:>8.2} {:>8.2} {cpu:>16} {ratio:>18.2}",
            col(&|f| f.per_sec),
            col(&|f| f.p50_ms),
            col(&|f| f.p99_ms),
        );
    }
}
