//! Ricochet ingest: the provider-facing front door.
//!
//! `POST /v1/complaints` and `POST /v1/deliveries` take batches from mailbox
//! providers, authenticate the caller (`ricochet_http::auth`), check every item
//! ([`complaints`], [`deliveries`]) and answer `200` only once every accepted
//! item is acknowledged by Kafka (through the [`publish::Publish`] seam). Errors are RFC 9457 problem
//! documents (`ricochet_http::problem`). The API is specified in `schemas/openapi/ingest.json`.

pub mod app;
pub mod arf;
mod batch;
pub mod complaints;
pub mod config;
pub mod deliveries;
mod flow;
pub mod metrics;
pub mod policy;
pub mod publish;
pub mod timefmt;

pub use app::{router, AppState};
pub use config::IngestConfig;

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

/// Serves on `listener` until `shutdown` completes, then drains in-flight
/// requests and flushes the producer. Also keeps the registry and the broker
/// probe fresh while running.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    state.registry().watch(Duration::from_secs(2));
    if let Some(policies) = state.policy_store() {
        policies.watch(Duration::from_secs(2));
    }
    let probe_state = state.clone();
    let probe = tokio::spawn(async move {
        loop {
            probe_state.probe_kafka().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    info!(addr = %listener.local_addr()?, "ingest listening");
    ricochet_http::serve(
        listener,
        router(state.clone()),
        state.server_limits(),
        shutdown,
    )
    .await?;
    probe.abort();
    info!("draining done; flushing the Kafka producer");
    let publisher = state.publisher();
    if let Err(e) =
        tokio::task::spawn_blocking(move || publisher.flush(Duration::from_secs(10))).await?
    {
        warn!(error = %e, "producer flush incomplete");
    }
    Ok(())
}
