//! The ESP API: each ESP pulls its own offenders and sender reputations.
//! Every response body is signed (detached JWS in `Ricochet-Signature`) with
//! Ricochet's key, published at `/.well-known/jwks.json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clickhouse::{Client, Row};
use ricochet_http::{authenticate, Problem};
use ricochet_registry::{ParticipantKind, RegistryHandle};
use ricochet_token::detached::sign_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{JwkSet, SigningKey, VerifyOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::named;
use crate::metrics::Metrics;

/// The header carrying the detached signature of the body.
pub const SIGNATURE_HEADER: &str = "ricochet-signature";
/// The `aud` ESP bearer tokens must carry.
pub const AUDIENCE: &str = "ricochet-esp-api";
/// Most offenders returned in one page.
pub const MAX_PAGE: u64 = 1000;

/// The routes the scoring service serves; kept in sync with
/// `schemas/openapi/esp-api.json` by a test.
pub const ROUTES: [(&str, &str); 6] = [
    ("get", "/v1/offenders"),
    ("get", "/v1/senders/{sender}/reputation"),
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
            }),
        }
    }
}

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/offenders", get(offenders))
        .route("/v1/senders/{sender}/reputation", get(reputation))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .with_state(state)
}

/// A JSON body with its detached signature.
fn signed(state: &ApiState, status: StatusCode, body: &Value) -> Response {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON body"));
    let mut resp = (status, bytes.clone()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match sign_detached(&state.inner.key, &bytes) {
        Ok(sig) => {
            h.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_str(&sig).expect("ASCII signature"),
            );
            resp
        }
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signing-failed",
            e.to_string(),
        )
        .into_response(),
    }
}

fn caller(state: &ApiState, headers: &HeaderMap) -> Result<String, Problem> {
    let opts = VerifyOptions::now();
    authenticate(
        headers,
        &state.inner.registry.current(),
        ParticipantKind::Esp,
        AUDIENCE,
        &opts,
    )
}

fn db_error(e: clickhouse::error::Error) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-unavailable",
        e.to_string(),
    )
    .retry_after(5)
}

/// Query of `GET /v1/offenders`.
#[derive(Debug, Deserialize)]
pub struct OffendersQuery {
    /// Cursor: the last `seq` already seen (0 for the beginning).
    #[serde(default)]
    pub since: u64,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u64>,
}

#[derive(Row, Deserialize, Serialize)]
struct OffenderRow {
    seq: u64,
    sender: String,
    at_ms: i64,
    from_tier: String,
    to_tier: String,
    rule: String,
    evidence: String,
    prev_hash: String,
    hash: String,
}

async fn offenders(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<OffendersQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let esp = match caller(&state, &headers) {
        Ok(e) => e,
        Err(p) => return p.into_response(),
    };
    let Ok(Query(q)) = query else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "since and limit must be non-negative integers",
        )
        .into_response();
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )
        .into_response();
    }
    let rows: Vec<OffenderRow> = match state
        .inner
        .client
        .query("SELECT seq, sender, at_ms, toString(from_tier) AS from_tier, toString(to_tier) AS to_tier, toString(rule) AS rule, evidence, prev_hash, hash FROM penalties WHERE esp = ? AND seq > ? ORDER BY seq LIMIT ?")
        .bind(&esp)
        .bind(q.since)
        .bind(limit)
        .fetch_all()
        .await
    {
        Ok(r) => r,
        Err(e) => return db_error(e).into_response(),
    };
    let next = rows.last().map_or(q.since, |r| r.seq);
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.seq, "sender": r.sender, "at_ms": r.at_ms, "from_tier": r.from_tier, "to_tier": r.to_tier,
                "rule": r.rule, "evidence": serde_json::from_str::<Value>(&r.evidence).unwrap_or(Value::Null),
                "evidence_raw": r.evidence, "prev_hash": r.prev_hash, "hash": r.hash,
            })
        })
        .collect();
    signed(
        &state,
        StatusCode::OK,
        &json!({"esp": esp, "since": q.since, "next": next, "items": items}),
    )
}

#[derive(Row, Deserialize)]
struct ReputationRow {
    window: String,
    delivered: u64,
    complaints: u64,
    complaints_by_code: Vec<(String, u64)>,
    complaints_by_provider: Vec<(String, u64)>,
    weighted: f64,
    rate: f64,
    lower: f64,
    upper: f64,
    tier: String,
    computed_at: i64,
}

#[derive(Row, Deserialize)]
struct StandingRow {
    tier: String,
    below_since: Option<i64>,
}

async fn reputation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(sender): Path<String>,
) -> Response {
    let esp = match caller(&state, &headers) {
        Ok(e) => e,
        Err(p) => return p.into_response(),
    };
    let client = &state.inner.client;
    let windows: Vec<ReputationRow> = match client
        .query("SELECT toString(r.window) AS window, argMax(r.delivered, r.computed_at) AS delivered, \
                  argMax(r.complaints, r.computed_at) AS complaints, \
                  argMax(r.complaints_by_code, r.computed_at) AS complaints_by_code, \
                  argMax(r.complaints_by_provider, r.computed_at) AS complaints_by_provider, \
                  argMax(r.weighted, r.computed_at) AS weighted, argMax(r.rate, r.computed_at) AS rate, \
                  argMax(r.lower, r.computed_at) AS lower, argMax(r.upper, r.computed_at) AS upper, \
                  argMax(toString(r.tier), r.computed_at) AS tier, max(r.computed_at) AS computed_at \
           FROM reputation AS r WHERE r.esp = ? AND r.sender = ? GROUP BY r.window ORDER BY window")
        .bind(&esp)
        .bind(&sender)
        .fetch_all()
        .await
    {
        Ok(r) => r,
        Err(e) => return db_error(e).into_response(),
    };
    let standing: Option<StandingRow> = match client
        .query("SELECT toString(tier) AS tier, below_since FROM sender_standing FINAL WHERE esp = ? AND sender = ?")
        .bind(&esp)
        .bind(&sender)
        .fetch_optional()
        .await
    {
        Ok(r) => r,
        Err(e) => return db_error(e).into_response(),
    };
    if windows.is_empty() && standing.is_none() {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-sender",
            format!("no data for sender {sender:?} of {esp}"),
        )
        .into_response();
    }
    let tier = standing
        .as_ref()
        .map_or("ok".to_string(), |s| s.tier.clone());
    let windows: Vec<Value> = windows
        .into_iter()
        .map(|w| json!({"window": w.window, "delivered": w.delivered, "complaints": w.complaints,
                "complaints_by_code": named(w.complaints_by_code), "complaints_by_provider": named(w.complaints_by_provider),
                "weighted_complaints": w.weighted, "rate": w.rate, "wilson_lower": w.lower, "wilson_upper": w.upper, "tier": w.tier, "computed_at_ms": w.computed_at}))
        .collect();
    let explanation = format!(
        "tier {tier}: the most severe tier whose threshold the lower Wilson bound (z = 1.96) of any window with enough volume reaches; a tier falls only after 7 consecutive days below it{}",
        standing.as_ref().and_then(|s| s.below_since).map_or(String::new(), |t| format!(" (below since {t})"))
    );
    signed(
        &state,
        StatusCode::OK,
        &json!({"esp": esp, "sender": sender, "tier": tier, "windows": windows, "explanation": explanation, "as_of": unix_now()}),
    )
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

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            ricochet_telemetry::metrics::CONTENT_TYPE,
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

/// Ready while scoring is fresh: a run succeeded within three intervals.
async fn readyz(State(state): State<ApiState>) -> Response {
    let age = unix_now() - state.inner.metrics.last_success.get();
    let fresh = age <= 3 * state.inner.interval_secs.max(1) + 5;
    let status = if fresh {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("last successful scoring run {age} s ago\n")).into_response()
}
