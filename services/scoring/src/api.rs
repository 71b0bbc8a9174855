//! The ESP API: each ESP pulls its own offenders, reputations and complaint
//! feed; the provider API ([`crate::provider_api`]) is served beside it.
//! Every response body is signed (detached JWS in `Ricochet-Signature`) with
//! Ricochet's key, published at `/.well-known/jwks.json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clickhouse::Client;
use ricochet_http::{authenticate, Problem};
use ricochet_registry::{ParticipantKind, RegistryHandle};
use ricochet_token::detached::sign_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{JwkSet, SigningKey, VerifyOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::dispatch::penalty_json;
use crate::listed::Board;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::provider_api::Listed;
use crate::standing_report;
use ricochet_kafka::Level;

/// The header carrying the detached signature of the body.
pub const SIGNATURE_HEADER: &str = "ricochet-signature";
/// The `aud` ESP bearer tokens must carry.
pub const AUDIENCE: &str = "ricochet-esp-api";
/// Most offenders returned in one page.
pub const MAX_PAGE: u64 = 1000;

/// The routes the scoring service serves; kept in sync with
/// `schemas/openapi/esp-api.json` by a test.
pub const ROUTES: [(&str, &str); 9] = [
    ("get", "/v1/offenders"),
    ("get", "/v1/complaints"),
    ("get", "/v1/senders/{sender}/reputation"),
    ("get", "/v1/esp/reputation"),
    ("get", "/v1/campaigns/{campaign}/reputation"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    registry: RegistryHandle,
    key: SigningKey,
    metrics: Metrics,
    interval_secs: i64,
    /// The policy in force, for explanations.
    policy: watch::Receiver<Arc<Policy>>,
    /// The list providers poll, once the scoring loop sends boards.
    listed: Option<Listed>,
    /// Tolerated clock skew for bearer token times, seconds.
    clock_skew_secs: i64,
}

impl ApiState {
    /// An API over `client`'s database, authenticating ESPs from `registry`,
    /// signing with `key`, exporting `metrics` of runs every `interval_secs`.
    pub fn new(
        client: Client,
        registry: RegistryHandle,
        key: SigningKey,
        metrics: Metrics,
        interval_secs: u64,
    ) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                client,
                registry,
                key,
                metrics,
                interval_secs: interval_secs as i64,
                policy: watch::channel(Arc::new(Policy::default())).1,
                listed: None,
                clock_skew_secs: 60,
            }),
        }
    }

    /// Serves the provider list from the boards `board` holds (the scoring
    /// loop sends each new one); without it the list answers `not-ready`.
    pub fn with_board(mut self, board: watch::Receiver<Arc<Board>>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the board is set before the state is shared")
            .listed = Some(Listed::new(board));
        self
    }

    /// Tolerates `secs` of clock skew in callers' bearer tokens (default 60).
    pub fn with_clock_skew(mut self, secs: i64) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the skew is set before the state is shared")
            .clock_skew_secs = secs;
        self
    }

    /// How bearer tokens are checked now.
    pub(crate) fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            now: unix_now(),
            clock_skew_secs: self.inner.clock_skew_secs,
        }
    }

    /// ClickHouse.
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The participants and their keys.
    pub(crate) fn registry(&self) -> &RegistryHandle {
        &self.inner.registry
    }

    /// The policy in force.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.inner.policy.borrow().clone()
    }

    /// The provider list, if the scoring loop feeds one.
    pub(crate) fn listed(&self) -> Option<&Listed> {
        self.inner.listed.as_ref()
    }

    /// Explains tiers with the policy `policy` holds (the scoring loop
    /// sends each reloaded policy) instead of the default.
    pub fn with_policy(mut self, policy: watch::Receiver<Arc<Policy>>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the policy is set before the state is shared")
            .policy = policy;
        self
    }
}

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/offenders", get(offenders))
        .route("/v1/complaints", get(complaints))
        .route("/v1/senders/{sender}/reputation", get(reputation))
        .route("/v1/esp/reputation", get(esp_reputation))
        .route(
            "/v1/campaigns/{campaign}/reputation",
            get(campaign_reputation),
        )
        .merge(crate::provider_api::routes())
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .with_state(state.clone())
        .merge(ricochet_http::ops::routes(state))
}

/// A JSON body with its detached signature.
pub(crate) fn signed(state: &ApiState, status: StatusCode, body: &Value) -> Response {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON body"));
    let sig = match signed_bytes(state, &bytes) {
        Ok(sig) => sig,
        Err(p) => return p.into_response(),
    };
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(SIGNATURE_HEADER, sig);
    resp
}

/// The detached signature of `body`, as the value of [`SIGNATURE_HEADER`].
pub(crate) fn signed_bytes(state: &ApiState, body: &[u8]) -> Result<HeaderValue, Problem> {
    let sig = sign_detached(&state.inner.key, body).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signing-failed",
            e.to_string(),
        )
    })?;
    Ok(HeaderValue::from_str(&sig).expect("ASCII signature"))
}

fn caller(state: &ApiState, headers: &HeaderMap) -> Result<String, Problem> {
    let opts = state.verify_options();
    authenticate(
        headers,
        &state.inner.registry.current(),
        ParticipantKind::Esp,
        AUDIENCE,
        &opts,
    )
}

pub(crate) fn db_error(e: impl Into<crate::ScoringError>) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-unavailable",
        e.into().to_string(),
    )
    .retry_after(5)
}

/// Query of `GET /v1/offenders` and `GET /v1/complaints`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Cursor: the last `seq` already seen (0 for the beginning).
    #[serde(default)]
    pub since: u64,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// The caller's ESP and the page it asks for, or the problem with the request.
fn page(
    state: &ApiState,
    headers: &HeaderMap,
    query: PageParams,
) -> Result<(String, u64, u64), Problem> {
    let esp = caller(state, headers)?;
    let Ok(Query(q)) = query else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "since and limit must be non-negative integers",
        ));
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok((esp, q.since, limit))
}

/// The page query as the handlers receive it (a bad one is answered 400).
type PageParams = Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>;

/// `GET /v1/complaints`: the caller's complaint feed after `since`.
async fn complaints(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: PageParams,
) -> Response {
    paged(&state, &headers, query, feed_page).await
}

/// `GET /v1/offenders`: the caller's penalty chain after `since`.
async fn offenders(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: PageParams,
) -> Response {
    paged(&state, &headers, query, offender_page).await
}

async fn feed_page(
    client: Client,
    esp: String,
    since: u64,
    limit: u64,
) -> crate::error::Result<Vec<(u64, Value)>> {
    let rows = crate::feed::read(&client, &esp, since, limit).await?;
    Ok(rows
        .iter()
        .map(|r| (r.seq, crate::feed::entry_json(r)))
        .collect())
}

async fn offender_page(
    client: Client,
    esp: String,
    since: u64,
    limit: u64,
) -> crate::error::Result<Vec<(u64, Value)>> {
    let rows = crate::chain::read_after(&client, &esp, since, limit).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut item = penalty_json(r);
            item["evidence_raw"] = json!(r.evidence);
            (r.seq, item)
        })
        .collect())
}

/// A signed page of `(seq, item)` rows that `read` gives for the caller's
/// ESP after `since`: `next` is the last row's seq (or `since`).
async fn paged<F, Fut>(
    state: &ApiState,
    headers: &HeaderMap,
    query: PageParams,
    read: F,
) -> Response
where
    F: FnOnce(Client, String, u64, u64) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<Vec<(u64, Value)>>>,
{
    let (esp, since, limit) = match page(state, headers, query) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let rows = match read(state.inner.client.clone(), esp.clone(), since, limit).await {
        Ok(r) => r,
        Err(e) => return db_error(e).into_response(),
    };
    let next = rows.last().map_or(since, |(seq, _)| *seq);
    let items: Vec<Value> = rows.into_iter().map(|(_, item)| item).collect();
    signed(
        state,
        StatusCode::OK,
        &json!({"esp": esp, "since": since, "next": next, "items": items}),
    )
}

/// Answers with the report of `key` at `level` of the caller's ESP.
async fn level_report(state: &ApiState, headers: &HeaderMap, level: Level, key: &str) -> Response {
    let esp = match caller(state, headers) {
        Ok(e) => e,
        Err(p) => return p.into_response(),
    };
    let policy = state.inner.policy.borrow().clone();
    match standing_report::report(&state.inner.client, &policy, level, &esp, key).await {
        Ok(Some(mut body)) => {
            body["as_of"] = json!(unix_now());
            signed(state, StatusCode::OK, &body)
        }
        Ok(None) => {
            let (reason, what) = match level {
                Level::Sender => ("unknown-sender", format!("sender {key:?}")),
                Level::Esp => ("no-data", "the ESP level".to_string()),
                Level::Campaign => ("unknown-campaign", format!("campaign {key:?}")),
                Level::Domain => ("unknown-domain", format!("domain {key:?}")),
            };
            Problem::new(
                StatusCode::NOT_FOUND,
                reason,
                format!("no data for {what} of {esp}"),
            )
            .into_response()
        }
        Err(e) => db_error(e).into_response(),
    }
}

async fn reputation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(sender): Path<String>,
) -> Response {
    level_report(&state, &headers, Level::Sender, &sender).await
}

async fn esp_reputation(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    level_report(&state, &headers, Level::Esp, "").await
}

async fn campaign_reputation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(campaign): Path<String>,
) -> Response {
    level_report(&state, &headers, Level::Campaign, &campaign).await
}

async fn jwks(State(state): State<ApiState>) -> Response {
    let set = JwkSet {
        keys: vec![state.inner.key.public_jwk()],
    };
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        serde_json::to_string(&set).expect("JWKS serializes"),
    )
        .into_response()
}

/// Ready while scoring is fresh: a run succeeded within three intervals.
impl ricochet_http::ops::Probe for ApiState {
    fn checks(&self) -> Vec<ricochet_http::ops::Check> {
        let age = unix_now() - self.inner.metrics.last_success.get();
        let fresh = age <= 3 * self.inner.interval_secs.max(1) + 5;
        vec![ricochet_http::ops::Check::new("scoring_fresh", fresh)
            .with_detail(format!("last successful scoring run {age} s ago"))]
    }

    fn metrics(&self) -> String {
        self.inner.metrics.render()
    }
}
