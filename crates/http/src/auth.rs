//! Who is calling: the participant's own bearer JWT, checked against the registry.

use axum::http::{header, HeaderMap, StatusCode};
use ricochet_registry::{ParticipantKind, Registry};
use ricochet_token::bearer::verify_bearer;
use ricochet_token::VerifyOptions;

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
        })?
        .trim();
    match verify_bearer(token, &registry.keys_of(kind), audience, opts) {
        Ok(claims) => Ok(claims.iss),
        Err(e) if e.reason() == "key-of-another-participant" => Err(Problem::new(
            StatusCode::FORBIDDEN,
            e.reason(),
            e.to_string(),
        )),
        Err(e) => Err(Problem::unauthorized(e.reason(), e.to_string())),
    }
}
