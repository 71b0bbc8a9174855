//! API bearer tokens: how providers and ESPs authenticate to Ricochet's APIs.
//!
//! A caller signs a short-lived JWT with one of its registered keys:
//! header `alg` `EdDSA`/`ES256`, `kid`, `typ` absent or `JWT`; claims `iss`
//! (its participant id), `aud` (the service), `iat`, `exp` (at most 5 minutes
//! after now) and `jti`. The same signature rules as for complaint tokens
//! apply (`none`, HMAC and algorithm confusion are refused), and a complaint
//! token (`typ: rct+jwt`) is never accepted as a bearer token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::TokenError;
use crate::jws::Decoded;
use crate::jwt::BearerCheck;
use crate::keys::SigningKey;
use crate::verify::{check_front, KeyLookup, VerifyOptions};

/// Longest a bearer token may stay valid: `exp` at most this far after now.
pub const MAX_BEARER_LIFETIME_SECS: i64 = 300;

/// The verified claims of a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BearerClaims {
    /// The calling participant.
    pub iss: String,
    /// Token id.
    pub jti: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a bearer token was refused, beyond the signature errors of [`TokenError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Signature, header or key failure (shared with complaint tokens).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// `aud` does not name this service.
    #[error("audience {found:?} does not include {expected:?}")]
    WrongAudience { expected: String, found: String },
    /// `exp` is further ahead than [`MAX_BEARER_LIFETIME_SECS`].
    #[error("exp is {secs} s ahead; at most {MAX_BEARER_LIFETIME_SECS} s allowed")]
    ExpTooFar { secs: i64 },
}

impl BearerError {
    /// Stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            BearerError::Token(e) => e.reason(),
            BearerError::WrongAudience { .. } => "wrong-audience",
            BearerError::ExpTooFar { .. } => "exp-too-far",
        }
    }
}

/// Signs a bearer token for `audience`, valid for `lifetime_secs` from `now`.
pub fn mint_bearer(
    key: &SigningKey,
    iss: &str,
    audience: &str,
    now: i64,
    lifetime_secs: i64,
) -> Result<String, TokenError> {
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| TokenError::Malformed("system random generator failed".into()))?;
    let claims = json!({
        "iss": iss, "aud": audience, "iat": now, "exp": now + lifetime_secs,
        "jti": crate::jws::b64_encode(&id),
    });
    crate::jwt::sign(key, "JWT", &claims)
}

/// Verifies a bearer token for `audience`; `keys` resolves the caller's keys.
pub fn verify_bearer(
    token: &str,
    keys: &impl KeyLookup,
    audience: &str,
    opts: &VerifyOptions,
) -> Result<BearerClaims, BearerError> {
    let mut decoded = Decoded::default();
    let typ_ok = |typ: Option<&str>| matches!(typ, None | Some("JWT"));
    let (compact, key) = check_front(token, &mut decoded, keys, typ_ok)?;
    // The signature and the audience are jsonwebtoken's to check.
    let claims = match crate::jwt::decode_bearer(token, key, audience) {
        Ok(claims) => claims,
        Err(BearerCheck::Token(e)) => return Err(e.into()),
        Err(BearerCheck::WrongAudience) => {
            return Err(BearerError::WrongAudience {
                expected: audience.into(),
                found: compact
                    .claims
                    .get("aud")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
        }
    };
    let iss = str_claim(&claims, "iss")?;
    let jti = str_claim(&claims, "jti")?;
    let exp = int_claim(&claims, "exp")?;
    if opts.expired(exp) {
        return Err(TokenError::Expired { exp, now: opts.now }.into());
    }
    if exp - opts.now > MAX_BEARER_LIFETIME_SECS + opts.clock_skew_secs {
        return Err(BearerError::ExpTooFar {
            secs: exp - opts.now,
        });
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_i64().ok_or(TokenError::InvalidClaim {
            claim: "iat",
            why: "expected an integer".into(),
        })?;
        if iat > opts.now + opts.clock_skew_secs {
            return Err(TokenError::NotYetValid { iat, now: opts.now }.into());
        }
    }
    Ok(BearerClaims { iss, jti, exp })
}

fn str_claim(
    claims: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<String, TokenError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None => Err(TokenError::MissingClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: name,
            why: "expected a non-empty string".into(),
        }),
    }
}

fn int_claim(
    claims: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<i64, TokenError> {
    match claims.get(name) {
        Some(v) => v.as_i64().ok_or(TokenError::InvalidClaim {
            claim: name,
            why: "expected an integer".into(),
        }),
        None => Err(TokenError::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{mint, Algorithm, IssuerKeys, Nature, TokenRequest};

    const NOW: i64 = 1_790_000_000;
    const OPTS: VerifyOptions = VerifyOptions {
        now: NOW,
        clock_skew_secs: 30,
    };

    fn keys() -> (SigningKey, IssuerKeys) {
        let k = SigningKey::generate(Algorithm::ES256, "p1").unwrap();
        let set = BTreeMap::from([("p1".to_string(), k.verifying_key())]);
        (k, BTreeMap::from([("mail.example".to_string(), set)]))
    }

    #[test]
    fn round_trip_and_audience() {
        let (k, set) = keys();
        let t = mint_bearer(&k, "mail.example", "ricochet-ingest", NOW, 120).unwrap();
        assert_eq!(
            verify_bearer(&t, &set, "ricochet-ingest", &OPTS)
                .unwrap()
                .iss,
            "mail.example"
        );
        assert_eq!(
            verify_bearer(&t, &set, "ricochet-esp-api", &OPTS)
                .unwrap_err()
                .reason(),
            "wrong-audience"
        );
    }

    #[test]
    fn lifetime_rules() {
        let (k, set) = keys();
        let long = mint_bearer(&k, "mail.example", "a", NOW, 3600).unwrap();
        assert_eq!(
            verify_bearer(&long, &set, "a", &OPTS).unwrap_err().reason(),
            "exp-too-far"
        );
        let old = mint_bearer(&k, "mail.example", "a", NOW - 400, 300).unwrap();
        assert_eq!(
            verify_bearer(&old, &set, "a", &OPTS).unwrap_err().reason(),
            "expired"
        );
    }

    #[test]
    fn complaint_tokens_are_not_bearer_tokens() {
        let (k, _) = keys();
        let set = BTreeMap::from([(
            "esp.example".to_string(),
            BTreeMap::from([("p1".to_string(), k.verifying_key())]),
        )]);
        let req = TokenRequest::new("esp.example", "s", Nature::Marketing, "a@b.example", NOW);
        let (t, _) = mint(&k, &req).unwrap();
        assert_eq!(
            verify_bearer(&t, &set, "a", &OPTS).unwrap_err().reason(),
            "wrong-type"
        );
    }
}
