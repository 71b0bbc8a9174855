//! The JWT machinery, from the `jsonwebtoken` crate: signing every token
//! Ricochet mints, and verifying API bearer tokens (signature, audience).
//! Complaint tokens are verified by [`crate::verify`] without it: ingest
//! checks their Ed25519 signatures in batches ([`crate::ed25519`]), which
//! `jsonwebtoken` cannot do.
//!
//! Ricochet's own rules stay around it. In front ([`crate::verify`]): the
//! size and ASCII limits, duplicate JSON members, the algorithm allow-list
//! (`none`, HMAC and RSA refused before any key is touched), `typ`, whose
//! key a `kid` is, and the precise reason of each refusal. After it: the
//! claims' meaning and the times, checked against an injectable clock
//! (`jsonwebtoken`'s validation reads the system clock, so it is off).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::keys::{Algorithm, SigningKey, VerifyingKey};

fn jose(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
    }
}

/// Signs `claims` with header `{typ, alg, kid}`.
pub(crate) fn sign<T: Serialize>(
    key: &SigningKey,
    typ: &str,
    claims: &T,
) -> Result<String, TokenError> {
    let header = Header {
        typ: Some(typ.to_string()),
        kid: Some(key.kid().to_string()),
        ..Header::new(jose(key.algorithm()))
    };
    let encoding = match key.algorithm() {
        Algorithm::EdDSA => EncodingKey::from_ed_der(&key.pkcs8()),
        Algorithm::ES256 => EncodingKey::from_ec_der(&key.pkcs8()),
    };
    jsonwebtoken::encode(&header, claims, &encoding)
        .map_err(|e| TokenError::Malformed(format!("signing: {e}")))
}

/// The key as `jsonwebtoken` verifies with it.
pub(crate) fn decoding_key(key: &VerifyingKey) -> DecodingKey {
    match key.algorithm() {
        Algorithm::EdDSA => DecodingKey::from_ed_der(key.public_bytes()),
        // The uncompressed point (0x04 || x || y), as ring reads it.
        Algorithm::ES256 => DecodingKey::from_ec_der(key.public_bytes()),
    }
}

/// Why a bearer token failed `jsonwebtoken`'s checks.
#[derive(Debug)]
pub(crate) enum BearerCheck {
    /// A signature, header or claim error in Ricochet's taxonomy.
    Token(TokenError),
    /// `aud` does not name the service.
    WrongAudience,
}

/// Verifies a bearer token's signature under `key` and that its `aud` names
/// `audience`; returns the claims. Times are the caller's to check.
pub(crate) fn decode_bearer(
    token: &str,
    key: &VerifyingKey,
    audience: &str,
) -> Result<Map<String, Value>, BearerCheck> {
    let mut validation = Validation::new(jose(key.algorithm()));
    validation.validate_exp = false;
    validation.required_spec_claims = ["aud".to_string()].into();
    validation.set_audience(&[audience]);
    match jsonwebtoken::decode::<Map<String, Value>>(token, &decoding_key(key), &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => BearerCheck::Token(TokenError::BadSignature),
            ErrorKind::InvalidAudience => BearerCheck::WrongAudience,
            ErrorKind::MissingRequiredClaim(_) => {
                BearerCheck::Token(TokenError::MissingClaim("aud"))
            }
            _ => BearerCheck::Token(TokenError::Malformed(e.to_string())),
        }),
    }
}
