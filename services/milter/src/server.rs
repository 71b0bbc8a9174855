//! The milter listener: one task per MTA connection, each with its own
//! milter state. Malformed traffic, a silent MTA or a closed socket ends
//! that connection only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use miltr_server::{Milter, Server};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::metrics::MilterMetrics;

/// Largest milter packet accepted (a header, a body chunk: Postfix sends
/// bodies in 64 KiB chunks).
pub const MAX_PACKET: usize = 1 << 20;
/// How long open connections may finish after shutdown is asked.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest silence from the MTA.
    pub idle_timeout: Duration,
}

/// Serves milter connections on `listener` until `shutdown` resolves, then
/// lets the open ones finish (at most [`DRAIN`]).
pub async fn run<M, F>(
    listener: TcpListener,
    make: F,
    limits: Limits,
    metrics: MilterMetrics,
    shutdown: impl Future<Output = ()>,
) where
    M: Milter + 'static,
    M::Error: std::fmt::Display,
    F: Fn() -> M + Send + Sync + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let make = Arc::new(make);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let (make, metrics) = (make.clone(), metrics.clone());
        tokio::spawn(async move {
            serve_one(stream, make(), limits.idle_timeout, &metrics).await;
            drop(permit);
        });
    }
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain time; closing them");
    }
}

async fn serve_one<M>(stream: TcpStream, mut milter: M, idle: Duration, metrics: &MilterMetrics)
where
    M: Milter,
    M::Error: std::fmt::Display,
{
    metrics.connections.inc();
    metrics.open_connections.inc();
    let _ = stream.set_nodelay(true);
    let mut io = IdleTimeout::new(stream, idle).compat();
    let mut server = Server::new(&mut milter, false, MAX_PACKET);
    if let Err(e) = server.handle_connection(&mut io).await {
        metrics.connection_errors.inc();
        tracing::info!(error = %e, "milter connection closed on an error");
    }
    metrics.open_connections.dec();
}

/// A stream that fails with `TimedOut` when nothing was read for `idle`.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let next = Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(r)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
