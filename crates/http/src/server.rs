//! The one way Ricochet serves HTTP: HTTP/1.1 with limits on what a client
//! may hold. `axum::serve` sets no timer, so a client that sends half a
//! request and then nothing keeps its connection (and a file descriptor)
//! for good; enough of them lock every other client out. Here a connection
//! that has not sent a request's headers within
//! [`ServerLimits::header_read_timeout`] (on a new connection, or idle
//! between keep-alive requests) is closed, and at most
//! [`ServerLimits::max_connections`] are served at once (the others wait in
//! the listen queue).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits on the connections of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request's headers, on a new connection or an idle
    /// kept-alive one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The server settings every service takes (flattened into its options).
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerArgs {
    /// Seconds a client has to send a request's headers, on a new
    /// connection or an idle kept-alive one, before it is closed.
    #[arg(
        long,
        env = "RICOCHET_HTTP_HEADER_TIMEOUT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub http_header_timeout_secs: u64,
    /// Most HTTP connections served at once; more wait in the listen queue.
    #[arg(
        long,
        env = "RICOCHET_HTTP_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub http_max_connections: u64,
}

impl ServerArgs {
    /// The limits these settings give.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(self.http_header_timeout_secs),
            max_connections: self.http_max_connections as usize,
            ..ServerLimits::default()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (at most [`ServerLimits::drain_timeout`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, or the peer left before accept:
                    // pause instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that breaks off or times out is its own business.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; closing them");
    }
    Ok(())
}
