//! Recipient policies in ingest: `GET /.well-known/ricochet-policy/{domain}`
//! serves each domain's policy in force (cacheable: `ETag`,
//! `Cache-Control`), and a `policy-violation` complaint is refused
//! (`no-policy-violation`) when the policy in force when its token was
//! issued accepts the declared nature for every recipient of the domain:
//! the complaint would say the sender broke a rule the recipient never had.
//! A domain with no policy published has nothing to check against, and its
//! `policy-violation` complaints are taken as the recipient's word.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ricochet_http::Problem;
use ricochet_kafka::{ComplaintCode, ComplaintRecord};
use ricochet_policy::store::Policies;
use ricochet_token::claims::normalize_domain;
use ricochet_token::Nature;

use crate::app::AppState;
use crate::complaints::Rejection;

/// How long caches may keep a policy.
pub const MAX_AGE_SECS: u32 = 300;

/// Refuses a `policy-violation` complaint the domain's policy contradicts.
pub fn check_policy_violation(
    record: &ComplaintRecord,
    policies: &Policies,
) -> Result<(), Rejection> {
    if record.code != ComplaintCode::PolicyViolation.as_str() {
        return Ok(());
    }
    let Some(policy) = policies.at(&record.recipient_domain, record.token_iat) else {
        return Ok(());
    };
    let Ok(nature) = record.nature.parse::<Nature>() else {
        return Ok(());
    };
    if policy.accepted_everywhere(nature) {
        return Err(Rejection::new(
            "no-policy-violation",
            format!(
                "the policy of {} in force when the token was issued (from {}) accepts {nature} mail",
                policy.domain, policy.effective_from
            ),
        ));
    }
    Ok(())
}

/// `GET /.well-known/ricochet-policy/{domain}`.
pub async fn well_known(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Response {
    // A name that is not a domain has no policy: 404, with its own reason.
    let Ok(domain) = normalize_domain(&domain) else {
        return Problem::new(StatusCode::NOT_FOUND, "not-a-domain", "not a domain name")
            .into_response();
    };
    let policy = state.policies().and_then(|p| p.current(&domain));
    let Some(policy) = policy else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "no-policy",
            format!("{domain} has published no recipient policy"),
        )
        .into_response();
    };
    let body = serde_json::to_vec_pretty(&*policy).expect("a policy serializes");
    let etag = format!("\"{}\"", hex_digest(&body));
    let cache = format!("public, max-age={MAX_AGE_SECS}");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("hex")),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cache).expect("ascii"),
        ),
    ];
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (StatusCode::OK, common, json, body).into_response()
}

fn hex_digest(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
