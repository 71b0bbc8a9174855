use anyhow::Context;
use clap::Parser;
use ricochet_ingest::{serve, AppState, IngestConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    let config = IngestConfig::parse();
    let kafka = config.kafka.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let state = AppState::new(config, &kafka)?;
    serve(state, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown requested; draining");
}
