//! The server over real sockets: half-sent requests are closed after the
//! header timeout while other clients are served, and the connection cap
//! holds.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use ricochet_http::{serve, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(limits: ServerLimits) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(serve(listener, app, limits, std::future::pending()));
    addr
}

/// A connection that sends a request line and half its headers, then nothing.
async fn half_request(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Waits until the server closes `s` (EOF or reset); the time it took.
async fn closed_by_server(mut s: TcpStream, deadline: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue, // a 408 before the close
            Err(_) => panic!("still open after {deadline:?}"),
        }
    }
}

fn limits(timeout_ms: u64, max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(timeout_ms),
        max_connections,
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_others_are_served() {
    let addr = start(limits(2_000, 1_000)).await;
    let opened = Instant::now();
    let mut held = vec![];
    for _ in 0..200 {
        held.push(half_request(&addr).await);
    }
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "served while 200 half-sent requests are held open"
    );
    for s in held {
        closed_by_server(s, Duration::from_secs(10)).await;
    }
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(1_900),
        "not closed before the timeout: {waited:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed_too() {
    let addr = start(limits(400, 1_000)).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    closed_by_server(s, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn no_more_connections_than_the_cap_are_served_at_once() {
    let addr = start(limits(700, 2)).await;
    let held = [half_request(&addr).await, half_request(&addr).await];
    let started = Instant::now();
    let resp = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "the third connection waited for a slot: {waited:?}"
    );
    drop(held);
}
