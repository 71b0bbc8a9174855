use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ricochet_loader::metrics::Metrics;
use ricochet_loader::pipeline::{run, Health};
use ricochet_loader::probe::LoaderProbe;
use ricochet_loader::LoaderConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    let config = LoaderConfig::parse();
    let kafka = config.kafka.clone();
    let clickhouse = config.clickhouse.clone();
    let metrics = Metrics::new();
    let health = Health {
        clickhouse_ok: Arc::new(AtomicBool::new(true)),
        running: Arc::new(AtomicBool::new(false)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let app = ricochet_http::ops::routes(LoaderProbe {
        metrics: metrics.clone(),
        health: health.clone(),
    });
    let limits = config.server.limits();
    tokio::spawn(ricochet_http::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::runtime::Handle::current();
    let loop_stop = stop.clone();
    let worker = std::thread::Builder::new()
        .name("loader".into())
        .spawn(move || {
            run(
                config,
                &kafka,
                &clickhouse,
                metrics,
                handle,
                loop_stop,
                health,
            )
        })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let finished = tokio::task::spawn_blocking(move || worker.join());
    tokio::pin!(finished);
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        r = &mut finished => {
            return r?.map_err(|_| anyhow::anyhow!("loader thread panicked"))?;
        }
    }
    tracing::info!("shutdown requested");
    stop.store(true, Ordering::Relaxed);
    finished
        .await?
        .map_err(|_| anyhow::anyhow!("loader thread panicked"))?
}
