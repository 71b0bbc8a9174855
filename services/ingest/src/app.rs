//! The HTTP service: state, routes, and the one flow both batch routes share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ricochet_kafka::records::sender_key;
use ricochet_kafka::{ComplaintRecord, DeliveryRecord, KafkaConfig};
use ricochet_registry::{Registry, RegistryHandle};
use ricochet_token::VerifyOptions;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::arf;
use crate::complaints::{
    check_batch, BatchResponse, ComplaintBatch, ComplaintItem, ItemResult, Rejection,
};
use crate::config::{IngestConfig, VerifyMode};
use crate::deliveries::{check_delivery, DeliveryBatch, DeliveryItem};
use crate::metrics::Metrics;
use crate::publish::{KafkaPublisher, Publish};
use crate::timefmt::now_ms;
use ricochet_http::ops::Check;
use ricochet_http::{authenticate, JsonLocation, Problem};
use ricochet_registry::ParticipantKind;

/// The routes this service serves (kept in sync with `schemas/openapi/ingest.json` by a test).
pub const ROUTES: [(&str, &str); 6] = [
    ("post", "/v1/complaints"),
    ("post", "/v1/deliveries"),
    ("post", "/v1/arf"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: IngestConfig,
    registry: RegistryHandle,
    publisher: Arc<dyn Publish>,
    pool: rayon::ThreadPool,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Bounds concurrent requests: beyond it, answer 503 at once instead of queueing.
    admission: Semaphore,
    metrics: Metrics,
    kafka_reachable: AtomicBool,
    clock: Clock,
}

/// Current time in Unix milliseconds. The service uses the system clock;
/// tests and simulations inject their own (see [`AppState::with_clock`]).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl AppState {
    /// The HTTP connection limits of the configuration.
    pub fn server_limits(&self) -> ricochet_http::ServerLimits {
        self.inner.config.server.limits()
    }

    /// Opens the registry, creates the Kafka producer and the verification pool.
    pub fn new(config: IngestConfig, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        Self::with_clock(config, kafka, Arc::new(now_ms))
    }

    /// As [`new`](Self::new), reading time from `clock`.
    pub fn with_clock(
        config: IngestConfig,
        kafka: &KafkaConfig,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let publisher = Arc::new(KafkaPublisher::new(kafka, config.kafka_timeout())?);
        Self::with_publisher(config, publisher, clock)
    }

    /// Opens the registry and the verification pool; accepted items go to `publisher`.
    pub fn with_publisher(
        config: IngestConfig,
        publisher: Arc<dyn Publish>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let registry = RegistryHandle::open(&config.registry)
            .with_context(|| format!("loading registry {}", config.registry.display()))?;
        let threads = match config.verify_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("verify-{i}"))
            .build()?;
        let rate = std::num::NonZeroU32::new(config.rate_per_sec.max(1)).unwrap();
        let burst = std::num::NonZeroU32::new(config.burst.max(1)).unwrap();
        let limiter = RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst));
        let max_in_flight = config.max_in_flight.max(1);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                registry,
                publisher,
                pool,
                limiter,
                admission: Semaphore::new(max_in_flight),
                metrics: Metrics::new(),
                kafka_reachable: AtomicBool::new(false),
                clock,
            }),
        })
    }

    /// The registry handle (to start its watcher).
    pub fn registry(&self) -> &RegistryHandle {
        &self.inner.registry
    }

    /// Where accepted items go (to flush on shutdown).
    pub fn publisher(&self) -> Arc<dyn Publish> {
        self.inner.publisher.clone()
    }

    /// Asks the broker whether it answers and records the outcome.
    pub async fn probe_kafka(&self) -> bool {
        let publisher = self.publisher();
        let ok = tokio::task::spawn_blocking(move || publisher.reachable(Duration::from_secs(2)))
            .await
            .unwrap_or(false);
        self.inner.kafka_reachable.store(ok, Ordering::Relaxed);
        self.inner.metrics.kafka_up.set(i64::from(ok));
        ok
    }
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/complaints", post(complaints))
        .route("/v1/deliveries", post(deliveries))
        .route("/v1/arf", post(arf_report))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "method not allowed on this route",
            )
        })
        .with_state(state.clone())
        .merge(ricochet_http::ops::routes(state))
}

/// Ready while the broker is reachable and the registry has providers.
impl ricochet_http::ops::Probe for AppState {
    fn checks(&self) -> Vec<Check> {
        let kafka = self.inner.kafka_reachable.load(Ordering::Relaxed);
        let registry = self.inner.registry.current().providers().next().is_some();
        vec![
            Check::new("kafka", kafka),
            Check::new("registry_has_providers", registry),
        ]
    }

    fn metrics(&self) -> String {
        self.inner.metrics.render()
    }
}

/// What differs between the two batch routes; the flow in [`ingest`] is shared.
trait BatchKind {
    const ROUTE: &'static str;
    fn topic(config: &IngestConfig) -> &str;
    type Item: Send + Sync + 'static;
    type Record: Serialize + Send + 'static;
    /// The items of a request body (a 400 problem if it is not one).
    fn parse(bytes: &[u8], now_ms: i64) -> Result<Vec<Self::Item>, Problem>;
    fn check(
        state: &AppState,
        items: &[Self::Item],
        provider: &str,
        registry: &Registry,
        now_ms: i64,
        pool: Option<&rayon::ThreadPool>,
    ) -> Vec<Result<Self::Record, Rejection>>;
    fn key(record: &Self::Record) -> String;
    fn id(record: &Self::Record) -> Option<String>;
}

struct Complaints;
impl BatchKind for Complaints {
    const ROUTE: &'static str = "/v1/complaints";
    fn topic(config: &IngestConfig) -> &str {
        &config.complaints_topic
    }
    type Item = ComplaintItem;
    type Record = ComplaintRecord;
    fn parse(bytes: &[u8], _: i64) -> Result<Vec<ComplaintItem>, Problem> {
        parse_json::<ComplaintBatch>(bytes).map(|b| b.complaints)
    }
    fn check(
        state: &AppState,
        items: &[ComplaintItem],
        provider: &str,
        registry: &Registry,
        now_ms: i64,
        pool: Option<&rayon::ThreadPool>,
    ) -> Vec<Result<ComplaintRecord, Rejection>> {
        let opts = VerifyOptions {
            now: now_ms / 1000,
            clock_skew_secs: state.inner.config.clock_skew_secs,
        };
        check_batch(items, provider, registry, &opts, now_ms, pool)
    }
    fn key(r: &ComplaintRecord) -> String {
        sender_key(&r.esp, &r.sender)
    }
    fn id(r: &ComplaintRecord) -> Option<String> {
        Some(r.jti.clone())
    }
}

struct Deliveries;
impl BatchKind for Deliveries {
    const ROUTE: &'static str = "/v1/deliveries";
    fn topic(config: &IngestConfig) -> &str {
        &config.deliveries_topic
    }
    type Item = DeliveryItem;
    type Record = DeliveryRecord;
    fn parse(bytes: &[u8], _: i64) -> Result<Vec<DeliveryItem>, Problem> {
        parse_json::<DeliveryBatch>(bytes).map(|b| b.deliveries)
    }
    fn check(
        _: &AppState,
        items: &[DeliveryItem],
        provider: &str,
        registry: &Registry,
        now_ms: i64,
        _: Option<&rayon::ThreadPool>,
    ) -> Vec<Result<DeliveryRecord, Rejection>> {
        items
            .iter()
            .map(|i| check_delivery(i, provider, registry, now_ms))
            .collect()
    }
    fn key(r: &DeliveryRecord) -> String {
        sender_key(&r.esp, &r.sender)
    }
    fn id(_: &DeliveryRecord) -> Option<String> {
        None
    }
}

/// One RFC 5965 report per request: the complaint it makes, or why none.
struct ArfReports;
impl BatchKind for ArfReports {
    const ROUTE: &'static str = "/v1/arf";
    fn topic(config: &IngestConfig) -> &str {
        &config.complaints_topic
    }
    type Item = Result<ComplaintItem, Rejection>;
    type Record = ComplaintRecord;
    fn parse(bytes: &[u8], now_ms: i64) -> Result<Vec<Self::Item>, Problem> {
        let report = arf::parse(bytes)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()))?;
        Ok(vec![arf::to_complaint(&report, now_ms)])
    }
    fn check(
        state: &AppState,
        items: &[Self::Item],
        provider: &str,
        registry: &Registry,
        now_ms: i64,
        pool: Option<&rayon::ThreadPool>,
    ) -> Vec<Result<ComplaintRecord, Rejection>> {
        let valid: Vec<ComplaintItem> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().cloned())
            .collect();
        let mut checked =
            Complaints::check(state, &valid, provider, registry, now_ms, pool).into_iter();
        items
            .iter()
            .map(|i| match i {
                Ok(_) => checked.next().expect("one verdict per valid item"),
                Err(r) => Err(r.clone()),
            })
            .collect()
    }
    fn key(r: &ComplaintRecord) -> String {
        Complaints::key(r)
    }
    fn id(r: &ComplaintRecord) -> Option<String> {
        Complaints::id(r)
    }
}

async fn arf_report(State(state): State<AppState>, request: Request) -> Response {
    respond::<ArfReports>(&state, request).await
}

async fn complaints(State(state): State<AppState>, request: Request) -> Response {
    respond::<Complaints>(&state, request).await
}

async fn deliveries(State(state): State<AppState>, request: Request) -> Response {
    respond::<Deliveries>(&state, request).await
}

async fn respond<K: BatchKind>(state: &AppState, request: Request) -> Response
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
    let config = &inner.config;
    let registry = inner.registry.current();
    let now = (inner.clock)();
    let opts = VerifyOptions {
        now: now / 1000,
        clock_skew_secs: config.clock_skew_secs,
    };
    let (parts, body) = request.into_parts();
    let provider = authenticate(
        &parts.headers,
        &registry,
        ParticipantKind::Provider,
        &config.audience,
        &opts,
    )?;
    if let Err(not_until) = inner.limiter.check_key(&provider) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("{provider} exceeds {} requests/s", config.rate_per_sec),
        )
        .retry_after(wait.as_secs_f64().ceil() as u64));
    }
    let bytes = read_body(
        body,
        parts.headers.get(header::CONTENT_LENGTH),
        config.max_body_bytes,
    )
    .await?;
    let items = K::parse(&bytes, now)?;
    if items.len() > config.max_items {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-items",
            format!(
                "{} items; at most {} per request",
                items.len(),
                config.max_items
            ),
        ));
    }

    let started = Instant::now();
    let worker_gone = || {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "verification worker stopped",
        )
    };
    // Signature checks are CPU-bound: off the reactor (pool or blocking
    // threads) it keeps serving other connections meanwhile.
    let checked = match config.verify_mode {
        VerifyMode::Pool => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (s, p, r) = (state.clone(), provider.clone(), registry.clone());
            inner.pool.spawn(move || {
                let _ = tx.send(K::check(&s, &items, &p, &r, now, Some(&s.inner.pool)));
            });
            rx.await.map_err(|_| worker_gone())?
        }
        VerifyMode::Blocking => {
            let (s, p, r) = (state.clone(), provider.clone(), registry.clone());
            tokio::task::spawn_blocking(move || K::check(&s, &items, &p, &r, now, None))
                .await
                .map_err(|_| worker_gone())?
        }
        VerifyMode::Inline => K::check(state, &items, &provider, &registry, now, None),
    };
    inner
        .metrics
        .verify_seconds
        .with_label_values(&[K::ROUTE])
        .observe(started.elapsed().as_secs_f64());

    let mut results = Vec::with_capacity(checked.len());
    let mut records = vec![];
    for (index, outcome) in checked.into_iter().enumerate() {
        match outcome {
            Ok(rec) => {
                let payload = serde_json::to_vec(&rec).expect("records serialize");
                results.push(ItemResult::accepted(index, K::id(&rec)));
                records.push((K::key(&rec), payload));
            }
            Err(rej) => results.push(ItemResult::rejected(index, rej)),
        }
    }
    if !records.is_empty() {
        let topic = K::topic(config);
        match inner.publisher.publish_all(topic, &records).await {
            Ok(took) => inner
                .metrics
                .produce_seconds
                .with_label_values(&[topic])
                .observe(took.as_secs_f64()),
            Err(e) => {
                warn!(provider = %provider, error = %e, "batch not durable; answering 503");
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "kafka-unavailable", format!("{e}; no item of this request is reported accepted; retry the whole batch (duplicates are counted once)"))
                    .retry_after(5));
            }
        }
    }
    for r in &results {
        inner
            .metrics
            .items
            .with_label_values(&[K::ROUTE, r.verdict, r.reason.unwrap_or("none")])
            .inc();
    }
    let response = BatchResponse::new(results);
    info!(provider = %provider, route = K::ROUTE, accepted = response.accepted, rejected = response.rejected, "batch");
    Ok(Json(response).into_response())
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

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            format!("invalid JSON at {path}: {inner}"),
        )
        .at(JsonLocation {
            path,
            line: inner.line(),
            column: inner.column(),
        })
    })
}
