//! The provider API: what a mailbox provider's postmaster and MTA read back.
//! A provider authenticates with a bearer token signed by its registered
//! key, audience [`PROVIDER_AUDIENCE`], and reads
//! - one ESP's, sender's, campaign's or From domain's standing: tier, since
//!   when, and each window's rate and bounds, with the complaints the
//!   caller itself reported (never another provider's), and
//! - the list of everything at `throttle` or above ([`crate::listed`]),
//!   with a version to poll for changes and an ETag for `If-None-Match`.
//!
//! Bodies are signed like the ESP API's (`Ricochet-Signature`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ricochet_http::{authenticate, Problem};
use ricochet_registry::ParticipantKind;
use ricochet_token::verify::unix_now;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::{db_error, signed, signed_bytes, ApiState};
use crate::listed::Board;
use crate::standing_report;
use ricochet_kafka::Level;

/// The `aud` provider bearer tokens must carry.
pub const PROVIDER_AUDIENCE: &str = "ricochet-provider-api";

/// The provider routes; kept in sync with `schemas/openapi/provider-api.json`
/// by a test.
pub const ROUTES: [(&str, &str); 5] = [
    ("get", "/v1/reputation/listed"),
    ("get", "/v1/reputation/esps/{esp}"),
    ("get", "/v1/reputation/esps/{esp}/senders/{sender}"),
    ("get", "/v1/reputation/esps/{esp}/campaigns/{campaign}"),
    ("get", "/v1/reputation/domains/{domain}"),
];

/// The board the API serves and the signed body of its whole list, made
/// once per version (a list of 10,000 keys is most of a megabyte to sign).
pub struct Listed {
    board: watch::Receiver<Arc<Board>>,
    full: Mutex<Option<(i64, Bytes, HeaderValue)>>,
}

impl Listed {
    /// Serves the boards `board` holds (the scoring loop sends each new one).
    pub fn new(board: watch::Receiver<Arc<Board>>) -> Self {
        Listed {
            board,
            full: Mutex::new(None),
        }
    }
}

/// The provider routes over `state`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/reputation/listed", get(listed))
        .route("/v1/reputation/esps/{esp}", get(esp_standing))
        .route(
            "/v1/reputation/esps/{esp}/senders/{sender}",
            get(sender_standing),
        )
        .route(
            "/v1/reputation/esps/{esp}/campaigns/{campaign}",
            get(campaign_standing),
        )
        .route("/v1/reputation/domains/{domain}", get(domain_standing))
}

/// The calling provider, or why it is refused. An ESP's token (another
/// key list, another audience) is refused here, as a provider's is on
/// the ESP API.
fn provider(state: &ApiState, headers: &HeaderMap) -> Result<String, Problem> {
    authenticate(
        headers,
        &state.registry().current(),
        ParticipantKind::Provider,
        PROVIDER_AUDIENCE,
        &state.verify_options(),
    )
}

/// Query of `GET /v1/reputation/listed`.
#[derive(Debug, Deserialize)]
pub struct ListedQuery {
    /// The version the caller holds: only what changed after it comes back.
    pub since: Option<i64>,
}

/// `GET /v1/reputation/listed`.
async fn listed(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ListedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(p) = provider(&state, &headers) {
        return p.into_response();
    }
    let Some(q) = query.ok().filter(|q| q.since.is_none_or(|v| v >= 0)) else {
        let detail = "since must be a version (a non-negative integer) from an earlier answer";
        return Problem::new(StatusCode::BAD_REQUEST, "bad-query", detail).into_response();
    };
    let Some(listed) = state.listed() else {
        return not_ready();
    };
    let board = listed.board.borrow().clone();
    if !board.is_ready() {
        return not_ready();
    }
    let etag = HeaderValue::from_str(&format!("\"{}\"", board.version)).expect("digits");
    let mut resp = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match q.since.and_then(|since| board.changes_json(since)) {
            Some(changes) => signed(&state, StatusCode::OK, &changes),
            None => full_list(&state, listed, &board),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn not_ready() -> Response {
    let detail = "the first scoring run has not finished; retry shortly";
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", detail)
        .retry_after(1)
        .into_response()
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let etag = etag.to_str().expect("ASCII");
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The whole list of `board`, signed once per version.
fn full_list(state: &ApiState, listed: &Listed, board: &Board) -> Response {
    let mut cached = listed.full.lock().expect("not poisoned");
    if cached.as_ref().is_none_or(|(v, _, _)| *v != board.version) {
        let body = Bytes::from(serde_json::to_vec(&board.full_json()).expect("JSON"));
        match signed_bytes(state, &body) {
            Ok(sig) => *cached = Some((board.version, body, sig)),
            Err(p) => return p.into_response(),
        }
    }
    let (_, body, sig) = cached.as_ref().expect("filled above");
    let mut resp = (StatusCode::OK, body.clone()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(crate::api::SIGNATURE_HEADER, sig.clone());
    resp
}

/// Answers with the standing of `key` at `level` of `esp` as the calling
/// provider may see it.
async fn standing(
    state: &ApiState,
    headers: &HeaderMap,
    level: Level,
    esp: &str,
    key: &str,
) -> Response {
    let caller = match provider(state, headers) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let policy = state.policy();
    match standing_report::report(state.client(), &policy, level, esp, key).await {
        Ok(Some(mut body)) => {
            only_own_complaints(&mut body, &caller);
            body["provider"] = json!(caller);
            body["as_of"] = json!(unix_now());
            signed(state, StatusCode::OK, &body)
        }
        Ok(None) => {
            let (reason, what) = match level {
                Level::Domain => ("unknown-domain", format!("domain {key:?}")),
                Level::Esp => ("unknown-esp", format!("ESP {esp:?}")),
                Level::Sender => ("unknown-sender", format!("sender {key:?} of ESP {esp:?}")),
                Level::Campaign => (
                    "unknown-campaign",
                    format!("campaign {key:?} of ESP {esp:?}"),
                ),
            };
            let detail = format!("no data for {what}");
            Problem::new(StatusCode::NOT_FOUND, reason, detail).into_response()
        }
        Err(e) => db_error(e).into_response(),
    }
}

/// Replaces each window's complaints per provider with the caller's own
/// count: which providers complain, and how much, is theirs to tell.
fn only_own_complaints(body: &mut Value, provider: &str) {
    let Some(windows) = body["windows"].as_array_mut() else {
        return;
    };
    for w in windows {
        let own = w["complaints_by_provider"]
            .get(provider)
            .cloned()
            .unwrap_or(json!(0));
        if let Some(w) = w.as_object_mut() {
            w.remove("complaints_by_provider");
            w.insert("your_complaints".to_string(), own);
        }
    }
}

async fn esp_standing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(esp): Path<String>,
) -> Response {
    standing(&state, &headers, Level::Esp, &esp, "").await
}

async fn sender_standing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((esp, sender)): Path<(String, String)>,
) -> Response {
    standing(&state, &headers, Level::Sender, &esp, &sender).await
}

async fn campaign_standing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((esp, campaign)): Path<(String, String)>,
) -> Response {
    standing(&state, &headers, Level::Campaign, &esp, &campaign).await
}

async fn domain_standing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> Response {
    standing(
        &state,
        &headers,
        Level::Domain,
        "",
        &domain.to_ascii_lowercase(),
    )
    .await
}
