//! Who is calling: the participant's own bearer JWT, checked against the registry.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use ricochet_registry::{ParticipantKind, Registry};
use ricochet_token::bearer::{verify_bearer, BearerClaims};
use ricochet_token::VerifyOptions;

use crate::bearer_cache::VerifiedBearers;
use crate::problem::Problem;

/// Longest Authorization header read; anything longer is refused unparsed.
const MAX_AUTHORIZATION_LEN: usize = 4096;

/// Authenticates the caller as a registered participant of `kind` (providers
/// for ingest, ESPs for the ESP API); returns its id.
///
/// 401 for anything that fails authentication (missing, malformed, `alg`
/// outside the allow-list, unknown key, bad signature, expired, wrong `aud`),
/// 403 when the signature is made with a key registered to someone else.
pub fn authenticate(
    headers: &HeaderMap,
    registry: &Registry,
    kind: ParticipantKind,
    audience: &str,
    opts: &VerifyOptions,
) -> Result<String, Problem> {
    let token = bearer_token(headers)?;
    check_bearer(token, registry, kind, audience, opts).map(|claims| claims.iss)
}

/// [`authenticate`], answering from `verified` when this exact token was
/// verified before against this same `registry` and has not expired since.
pub fn authenticate_cached(
    headers: &HeaderMap,
    registry: &Arc<Registry>,
    kind: ParticipantKind,
    audience: &str,
    opts: &VerifyOptions,
    verified: &VerifiedBearers,
) -> Result<String, Problem> {
    let token = bearer_token(headers)?;
    let digest = VerifiedBearers::digest(kind, audience, token);
    if let Some(participant) = verified.get(&digest, registry, opts) {
        return Ok(participant);
    }
    let claims = check_bearer(token, registry, kind, audience, opts)?;
    verified.insert(digest, registry, &claims.iss, claims.exp, opts);
    Ok(claims.iss)
}

/// The token of the `Authorization: Bearer` header, or the 401 why not.
fn bearer_token(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Problem::unauthorized(
            "missing-credentials",
            "send Authorization: Bearer <JWT signed with your registered key>",
        )
    })?;
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Problem::unauthorized(
            "malformed-credentials",
            "Authorization header too long",
        ));
    }
    let value = value.to_str().map_err(|_| {
        Problem::unauthorized("malformed-credentials", "Authorization header is not ASCII")
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            Problem::unauthorized("malformed-credentials", "expected the Bearer scheme")
        })?;
    Ok(token.trim())
}

/// Verifies the bearer token itself: 401, or 403 for another participant's key.
fn check_bearer(
    token: &str,
    registry: &Registry,
    kind: ParticipantKind,
    audience: &str,
    opts: &VerifyOptions,
) -> Result<BearerClaims, Problem> {
    verify_bearer(token, &registry.keys_of(kind), audience, opts).map_err(|e| match e.reason() {
        "key-of-another-participant" => {
            Problem::new(StatusCode::FORBIDDEN, e.reason(), e.to_string())
        }
        _ => Problem::unauthorized(e.reason(), e.to_string()),
    })
}
