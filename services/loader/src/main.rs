use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use ricochet_loader::metrics::Metrics;
use ricochet_loader::pipeline::{run, Health};
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
    let (m, h) = (metrics.clone(), health.clone());
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        ricochet_telemetry::metrics::CONTENT_TYPE,
                    )],
                    m.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                let ready =
                    h.running.load(Ordering::Relaxed) && h.clickhouse_ok.load(Ordering::Relaxed);
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (
                    status,
                    format!(
                        "running={} clickhouse_ok={}\n",
                        h.running.load(Ordering::Relaxed),
                        h.clickhouse_ok.load(Ordering::Relaxed)
                    ),
                )
            }),
        );
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
