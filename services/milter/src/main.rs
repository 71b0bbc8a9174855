use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ricochet_http::ops::{Check, Probe};
use ricochet_milter::check::CheckMilter;
use ricochet_milter::config::{Cli, ListenArgs, Mode};
use ricochet_milter::metrics::MilterMetrics;
use ricochet_milter::server::{self, Limits};
use ricochet_milter::sign::SignMilter;
use ricochet_milter::{deliveries, setup};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    let cli = Cli::parse();
    let metrics = MilterMetrics::new();
    match cli.mode {
        Mode::Sign(config) => {
            let signer = setup::signer(&config, metrics.clone())?;
            let listener = listen(&config.listen, &metrics).await?;
            tracing::info!(listen = %config.listen.listen, esp = %config.esp, "sign milter ready");
            let make = move || SignMilter::new(signer.clone());
            server::run(listener, make, limits(&config.listen), metrics, shutdown()).await;
        }
        Mode::Check(config) => {
            let (checker, reporter) = setup::checker(&config, metrics.clone())?;
            let listener = listen(&config.listen, &metrics).await?;
            let interval = Duration::from_secs(config.report.report_secs);
            let counts = checker.counts.clone();
            let reporting = tokio::spawn(deliveries::run(counts.clone(), reporter, interval));
            tracing::info!(listen = %config.listen.listen, "check milter ready");
            let make = move || CheckMilter::new(checker.clone());
            server::run(listener, make, limits(&config.listen), metrics, shutdown()).await;
            reporting.abort();
            counts.save().context("saving the counts file")?;
        }
    }
    Ok(())
}

fn limits(args: &ListenArgs) -> Limits {
    Limits {
        max_connections: args.max_connections as usize,
        idle_timeout: args.idle_timeout(),
    }
}

/// Binds the milter port and starts the ops endpoints.
async fn listen(args: &ListenArgs, metrics: &MilterMetrics) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let ops = TcpListener::bind(args.ops_listen)
        .await
        .with_context(|| format!("binding {}", args.ops_listen))?;
    let app = ricochet_http::ops::routes(MilterProbe(metrics.clone()));
    let limits = ricochet_http::server::ServerLimits::default();
    tokio::spawn(ricochet_http::server::serve(
        ops,
        app,
        limits,
        std::future::pending(),
    ));
    Ok(listener)
}

/// What /readyz and /metrics report.
#[derive(Clone)]
struct MilterProbe(MilterMetrics);

impl Probe for MilterProbe {
    fn checks(&self) -> Vec<Check> {
        vec![Check::new("listening", true)]
    }

    fn metrics(&self) -> String {
        ricochet_telemetry::metrics::render(&self.0.registry)
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown requested; finishing open connections");
}
