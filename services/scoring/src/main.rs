use std::time::Duration;

use clap::Parser;
use ricochet_scoring::engine::score_once;
use ricochet_scoring::Policy;
use ricochet_storage::ClickHouseConfig;
use tracing::{info, warn};

/// Ricochet scoring: computes sender reputation and penalty tiers from
/// ClickHouse on an interval and records every tier change in the
/// hash-chained `penalties` table.
#[derive(Parser, Debug)]
#[command(name = "ricochet-scoring", version)]
struct Args {
    /// Seconds between scoring runs.
    #[arg(long, env = "RICOCHET_SCORING_INTERVAL_SECS", default_value_t = 10)]
    interval_secs: u64,
    /// Run once and exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    let args = Args::parse();
    let client = ClickHouseConfig::from_env().client();
    let policy = Policy::default();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let started = std::time::Instant::now();
        match score_once(&client, &policy, now_ms).await {
            Ok(r) => {
                info!(senders = r.senders, changes = r.changes.len(), took = ?started.elapsed(), "scoring run")
            }
            Err(e) if args.once => return Err(e.into()),
            Err(e) => warn!(error = %e, "scoring run failed; retrying next interval"),
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.interval_secs)) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
