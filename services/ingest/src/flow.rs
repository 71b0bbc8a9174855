//! The flow every batch route shares: admission, authentication, rate
//! limit, body, items checked off the reactor, the accepted ones published,
//! and `200` only once all of them are durable.

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ricochet_registry::ParticipantKind;
use ricochet_token::VerifyOptions;
use tracing::{info, warn};

use crate::app::AppState;
use crate::batch::{BatchKind, CheckAt};
use crate::complaints::{BatchResponse, ItemResult};
use crate::config::VerifyMode;
use crate::publish::Records;
use ricochet_http::{authenticate_cached, Problem};

pub(crate) async fn respond<K: BatchKind>(state: &AppState, request: Request) -> Response
where
    K::Item: Send,
{
    let m = &state.inner.metrics;
    let response = match state.inner.admission.try_acquire() {
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress",
        )
        .retry_after(1)
        .into_response(),
        Ok(_permit) => {
            m.in_flight.inc();
            let deadline = state.inner.config.request_timeout();
            let r = match tokio::time::timeout(deadline, ingest::<K>(state, request)).await {
                Ok(Ok(ok)) => ok,
                Ok(Err(problem)) => problem.into_response(),
                Err(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    format!("request not completed within {deadline:?}; retry the whole batch"),
                )
                .retry_after(5)
                .into_response(),
            };
            m.in_flight.dec();
            r
        }
    };
    m.requests
        .with_label_values(&[K::ROUTE, response.status().as_str()])
        .inc();
    response
}

/// The shared flow: authenticate, rate-limit, read and parse the body, check
/// each item off the reactor, publish the accepted ones, and answer 200 only
/// once Kafka has acknowledged all of them.
async fn ingest<K: BatchKind>(state: &AppState, request: Request) -> Result<Response, Problem>
where
    K::Item: Send,
{
    let inner = &state.inner;
    let registry = inner.registry.current();
    let now = (inner.clock)();
    let (parts, body) = request.into_parts();
    let provider = admit(state, &parts.headers, &registry, now)?;
    let config = &inner.config;
    let length = parts.headers.get(header::CONTENT_LENGTH);
    let bytes = read_body(body, length, config.max_body_bytes).await?;
    let items = K::parse(&bytes, now)?;
    if items.len() > config.max_items {
        let detail = format!(
            "{} items; at most {} per request",
            items.len(),
            config.max_items
        );
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-items",
            detail,
        ));
    }
    let started = Instant::now();
    let checked = check_off_reactor::<K>(state, items, &provider, registry, now).await?;
    let seconds = started.elapsed().as_secs_f64();
    inner
        .metrics
        .verify_seconds
        .with_label_values(&[K::ROUTE])
        .observe(seconds);
    let mut results = Vec::with_capacity(checked.len());
    // A record is its token and claims again, with names: about the item's
    // share of the body plus half a kilobyte (at most 4 KiB an item: an ARF
    // report's body is mostly the original message). Sized once, the
    // buffer is not copied as it grows.
    let n = checked.len();
    let mut records = Records::with_capacity(n, (bytes.len() + n * 512).min(n * 4096));
    for (index, outcome) in checked.into_iter().enumerate() {
        match outcome {
            Ok(rec) => {
                records.push(|b| K::write_key(&rec, b), |b| K::write_payload(&rec, b));
                results.push(ItemResult::accepted(index, K::into_id(rec)));
            }
            Err(rej) => results.push(ItemResult::rejected(index, rej)),
        }
    }
    publish::<K>(state, &provider, &records).await?;
    count_items::<K>(state, &results);
    let response = BatchResponse::new(results);
    info!(provider = %provider, route = K::ROUTE, accepted = response.accepted, rejected = response.rejected, "batch");
    Ok(json_response(&response, response.results.len() * 96 + 64))
}

/// `200` with `value` as JSON, written into a buffer of `capacity` bytes
/// (a batch's response is about 70-100 bytes per item).
fn json_response(value: &impl serde::Serialize, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            let detail = format!("writing the response: {e}");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail).into_response()
        }
    }
}

/// Adds the request's verdicts to the items counter: one update per
/// (verdict, reason) seen, not one per item.
fn count_items<K: BatchKind>(state: &AppState, results: &[ItemResult]) {
    let mut counts: Vec<((&str, &str), u64)> = Vec::new();
    for r in results {
        let key = (r.verdict, r.reason.unwrap_or("none"));
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    for ((verdict, reason), n) in counts {
        let labels = [K::ROUTE, verdict, reason];
        state
            .inner
            .metrics
            .items
            .with_label_values(&labels)
            .inc_by(n);
    }
}

/// The authenticated provider, if it is within its request rate.
fn admit(
    state: &AppState,
    headers: &header::HeaderMap,
    registry: &std::sync::Arc<ricochet_registry::Registry>,
    now_ms: i64,
) -> Result<String, Problem> {
    let config = &state.inner.config;
    let opts = VerifyOptions {
        now: now_ms / 1000,
        clock_skew_secs: config.clock_skew_secs,
    };
    let kind = ParticipantKind::Provider;
    let bearers = &state.inner.bearers;
    let provider = authenticate_cached(headers, registry, kind, &config.audience, &opts, bearers)?;
    if let Err(not_until) = state.inner.limiter.check_key(&provider) {
        let clock = governor::clock::DefaultClock::default();
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
        let detail = format!("{provider} exceeds {} requests/s", config.rate_per_sec);
        return Err(
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail)
                .retry_after(wait.as_secs_f64().ceil() as u64),
        );
    }
    Ok(provider)
}

/// Checks the items where the configuration says: signature checks are
/// CPU-bound, and off the reactor (pool or blocking threads) it keeps
/// serving other connections meanwhile.
async fn check_off_reactor<K: BatchKind>(
    state: &AppState,
    items: Vec<K::Item>,
    provider: &str,
    registry: std::sync::Arc<ricochet_registry::Registry>,
    now: i64,
) -> Result<Vec<Result<K::Record, crate::complaints::Rejection>>, Problem>
where
    K::Item: Send,
{
    let (s, p, r) = (state.clone(), provider.to_string(), registry);
    let check = move |mut items: Vec<K::Item>, on_pool: bool| {
        let pool = on_pool.then_some(&s.inner.pool);
        let at = CheckAt {
            state: &s,
            provider: &p,
            registry: &r,
            now_ms: now,
            pool,
        };
        K::check(&at, &mut items)
    };
    match state.inner.config.verify_mode {
        VerifyMode::Pool => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            state.inner.pool.spawn(move || {
                let _ = tx.send(check(items, true));
            });
            rx.await.map_err(worker_gone)
        }
        VerifyMode::Blocking => tokio::task::spawn_blocking(move || check(items, false))
            .await
            .map_err(worker_gone),
        VerifyMode::Inline => Ok(check(items, false)),
    }
}

/// The answer when the verification worker went away (a panic, shutdown).
fn worker_gone<E>(_: E) -> Problem {
    let detail = "verification worker stopped";
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
}

/// Publishes the accepted records; a `503` if any is not durable.
async fn publish<K: BatchKind>(
    state: &AppState,
    provider: &str,
    records: &Records,
) -> Result<(), Problem> {
    if records.is_empty() {
        return Ok(());
    }
    let inner = &state.inner;
    let topic = K::topic(&inner.config);
    match inner.publisher.publish_all(topic, records).await {
        Ok(took) => {
            let metric = inner.metrics.produce_seconds.with_label_values(&[topic]);
            metric.observe(took.as_secs_f64());
            Ok(())
        }
        Err(e) => {
            warn!(provider = %provider, error = %e, "batch not durable; answering 503");
            let detail = format!("{e}; no item of this request is reported accepted; retry the whole batch (duplicates are counted once)");
            Err(
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "kafka-unavailable", detail)
                    .retry_after(5),
            )
        }
    }
}

async fn read_body(
    body: Body,
    content_length: Option<&header::HeaderValue>,
    limit: usize,
) -> Result<bytes::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body over {limit} bytes"),
        )
    };
    if let Some(len) = content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                format!("reading the body: {e}"),
            )
        }
    })
}
