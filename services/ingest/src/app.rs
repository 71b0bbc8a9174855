//! The HTTP service: state, routes, and the one flow both batch routes share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ricochet_kafka::KafkaConfig;
use ricochet_policy::store::Policies;
use ricochet_policy::PolicyStore;
use ricochet_registry::RegistryHandle;
use tokio::sync::Semaphore;

use crate::batch::{ArfReports, Complaints, Deliveries};
use crate::config::IngestConfig;
use crate::flow::respond;
use crate::metrics::Metrics;
use crate::publish::{KafkaPublisher, Publish};
use crate::timefmt::now_ms;
use ricochet_http::ops::Check;
use ricochet_http::Problem;

/// The routes this service serves (kept in sync with `schemas/openapi/ingest.json` by a test).
pub const ROUTES: [(&str, &str); 7] = [
    ("post", "/v1/complaints"),
    ("get", "/.well-known/ricochet-policy/{domain}"),
    ("post", "/v1/deliveries"),
    ("post", "/v1/arf"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: IngestConfig,
    pub(crate) registry: RegistryHandle,
    pub(crate) policies: Option<PolicyStore>,
    pub(crate) publisher: Arc<dyn Publish>,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) limiter: DefaultKeyedRateLimiter<String>,
    /// Providers' bearer tokens already verified (one signature check per token, not per request).
    pub(crate) bearers: ricochet_http::VerifiedBearers,
    /// Bounds concurrent requests: beyond it, answer 503 at once instead of queueing.
    pub(crate) admission: Semaphore,
    pub(crate) metrics: Metrics,
    pub(crate) kafka_reachable: AtomicBool,
    pub(crate) clock: Clock,
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
        let publisher = Arc::new(KafkaPublisher::new(
            kafka,
            config.kafka_timeout(),
            config.kafka_linger(),
        )?);
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
        let policies = config
            .policies
            .as_deref()
            .map(PolicyStore::open)
            .transpose()
            .context("loading recipient policies")?;
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
                policies,
                publisher,
                pool,
                limiter,
                bearers: ricochet_http::VerifiedBearers::default(),
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

    /// The recipient policy directory, if configured (to start its watcher).
    pub fn policy_store(&self) -> Option<&PolicyStore> {
        self.inner.policies.as_ref()
    }

    /// The recipient policies in force, if a directory is configured.
    pub fn policies(&self) -> Option<Arc<Policies>> {
        self.inner.policies.as_ref().map(|p| p.current())
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
        .route(
            "/.well-known/ricochet-policy/{domain}",
            get(crate::policy::well_known),
        )
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

async fn arf_report(State(state): State<AppState>, request: Request) -> Response {
    respond::<ArfReports>(&state, request).await
}

async fn complaints(State(state): State<AppState>, request: Request) -> Response {
    respond::<Complaints>(&state, request).await
}

async fn deliveries(State(state): State<AppState>, request: Request) -> Response {
    respond::<Deliveries>(&state, request).await
}
