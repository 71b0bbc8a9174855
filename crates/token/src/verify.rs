//! Verifying tokens (the provider and ingest side).
//!
//! Order matters: framing, then the header (algorithm allow-list, type, key id),
//! then the issuer's key, then the signature, and only then the claims'
//! meaning. Nothing in the claims is trusted before the signature verifies;
//! `iss` is read first only to choose whose key to try.

use std::collections::BTreeMap;

use crate::claims::{Claims, MAX_LIFETIME_SECS};
use crate::ed25519;
use crate::error::TokenError;
use crate::jws::{self, Decoded};
use crate::keys::{Algorithm, VerifyingKey};
use crate::members::{Member, Members};
use crate::TOKEN_TYPE;

/// Where verification finds an issuer's key.
pub trait KeyLookup {
    /// The key `kid` of issuer `iss`, or [`TokenError::UnknownIssuer`] / [`TokenError::UnknownKid`].
    fn key(&self, iss: &str, kid: &str) -> Result<&VerifyingKey, TokenError>;
}

/// Issuer id → (kid → key): e.g. a provider's pinned copies of its ESPs' key sets.
pub type IssuerKeys = BTreeMap<String, BTreeMap<String, VerifyingKey>>;

impl KeyLookup for IssuerKeys {
    fn key(&self, iss: &str, kid: &str) -> Result<&VerifyingKey, TokenError> {
        let keys = self
            .get(iss)
            .ok_or_else(|| TokenError::UnknownIssuer(iss.into()))?;
        keys.get(kid)
            .ok_or_else(|| missing_kid(iss, kid, self.iter().map(|(o, k)| (o.as_str(), k))))
    }
}

/// The error for a `kid` the issuer does not have: [`TokenError::ForeignKey`] if
/// another participant registered it (someone signing with their own key while
/// claiming to be `iss`), else [`TokenError::UnknownKid`].
pub fn missing_kid<'a>(
    iss: &str,
    kid: &str,
    others: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, VerifyingKey>)>,
) -> TokenError {
    match others
        .into_iter()
        .find(|(owner, keys)| *owner != iss && keys.contains_key(kid))
    {
        Some((owner, _)) => TokenError::ForeignKey {
            iss: iss.into(),
            kid: kid.into(),
            owner: owner.into(),
        },
        None => TokenError::UnknownKid {
            iss: iss.into(),
            kid: kid.into(),
        },
    }
}

/// The clock and tolerances a verification runs with.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Current time, seconds since the epoch.
    pub now: i64,
    /// Tolerated clock difference between the ESP and us, in seconds.
    pub clock_skew_secs: i64,
}

impl VerifyOptions {
    /// Whether a token whose `exp` is this has expired, the skew allowed for.
    pub fn expired(&self, exp: i64) -> bool {
        exp + self.clock_skew_secs <= self.now
    }

    /// Options at the current system time with a 60 s skew.
    pub fn now() -> Self {
        VerifyOptions {
            now: unix_now(),
            clock_skew_secs: 60,
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Verifies `token` and returns its claims, or the precise reason it is refused.
pub fn verify(
    token: &str,
    keys: &impl KeyLookup,
    opts: &VerifyOptions,
) -> Result<Claims, TokenError> {
    let mut decoded = Decoded::default();
    let (compact, key) = check_front(token, &mut decoded, keys, is_complaint_token)?;
    if !key.verify(compact.signing_input.as_bytes(), &compact.signature) {
        return Err(TokenError::BadSignature);
    }
    interpret(compact.claims, opts)
}

/// [`verify`] with an Ed25519 signature checked by `ring`, one at a time
/// (RFC 8032's cofactorless equation), as ingest checked tokens before batch
/// verification: the single-signature limit `ricochet bench ingest`
/// compares against. For benchmarks only; Ricochet's rule is [`verify`]'s.
#[cfg(feature = "bench-baselines")]
pub fn verify_on_ring(
    token: &str,
    keys: &impl KeyLookup,
    opts: &VerifyOptions,
) -> Result<Claims, TokenError> {
    use ring::signature::{UnparsedPublicKey, ED25519};
    let mut decoded = Decoded::default();
    let (compact, key) = check_front(token, &mut decoded, keys, is_complaint_token)?;
    let (message, signature) = (compact.signing_input.as_bytes(), &compact.signature);
    let holds = match key.algorithm() {
        Algorithm::EdDSA => UnparsedPublicKey::new(&ED25519, key.public_bytes())
            .verify(message, signature)
            .is_ok(),
        Algorithm::ES256 => key.verify(message, signature),
    };
    if !holds {
        return Err(TokenError::BadSignature);
    }
    interpret(compact.claims, opts)
}

/// Verifies many tokens at once: exactly the verdicts [`verify`] gives each,
/// in order, with the Ed25519 signatures among them checked in one batch
/// equation (P-256 signatures one at a time). Fastest with a few hundred
/// tokens; see [`crate::ed25519`] for why batch and single agree.
pub fn verify_many(
    tokens: &[&str],
    keys: &impl KeyLookup,
    opts: &VerifyOptions,
) -> Vec<Result<Claims, TokenError>> {
    let mut decoded: Vec<Decoded> = tokens.iter().map(|_| Decoded::default()).collect();
    let fronts: Vec<_> = tokens
        .iter()
        .zip(decoded.iter_mut())
        .map(|(t, d)| check_front(t, d, keys, is_complaint_token))
        .collect();
    let signed = signatures_hold(&fronts);
    fronts
        .into_iter()
        .zip(signed)
        .map(|(front, holds)| {
            let (compact, _) = front?;
            if !holds {
                return Err(TokenError::BadSignature);
            }
            interpret(compact.claims, opts)
        })
        .collect()
}

/// Whether each token that passed its front checks carries a valid signature.
fn signatures_hold(fronts: &[Result<Front<'_, '_, '_>, TokenError>]) -> Vec<bool> {
    let mut holds = vec![false; fronts.len()];
    let (mut jobs, mut at) = (Vec::new(), Vec::new());
    for (i, (compact, key)) in fronts
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.as_ref().ok()?)))
    {
        let (message, signature) = (compact.signing_input.as_bytes(), &compact.signature);
        match key.ed25519() {
            Some(key) => {
                jobs.push(ed25519::Job {
                    key,
                    message,
                    signature,
                });
                at.push(i);
            }
            None => holds[i] = key.verify(message, signature),
        }
    }
    for (i, ok) in at.into_iter().zip(ed25519::verify_all(&jobs)) {
        holds[i] = ok;
    }
    holds
}

fn is_complaint_token(typ: Option<&str>) -> bool {
    typ == Some(TOKEN_TYPE)
}

/// The claims' meaning and times, once the signature holds.
fn interpret(claims: Members<'_>, opts: &VerifyOptions) -> Result<Claims, TokenError> {
    let claims = Claims::from_members(claims)?;
    check_times(&claims, opts)?;
    Ok(claims)
}

/// A token past its front checks, and the key to check its signature with.
pub(crate) type Front<'t, 'b, 'k> = (jws::Compact<'t, 'b>, &'k VerifyingKey);

/// Everything before the signature: framing, header (`alg` allow-list,
/// `typ`, `crit`, `kid`), the issuer's key and that it is of the header's
/// algorithm. Returns the parsed token (reading from `decoded`) and the key
/// to check it with. `typ_ok` decides which `typ` header values are allowed.
pub(crate) fn check_front<'t, 'b, 'k>(
    token: &'t str,
    decoded: &'b mut Decoded,
    keys: &'k impl KeyLookup,
    typ_ok: impl Fn(Option<&str>) -> bool,
) -> Result<Front<'t, 'b, 'k>, TokenError> {
    let compact = jws::parse(token, decoded)?;
    let alg = header_algorithm(&compact.header)?;
    match compact.header.get("typ") {
        None if typ_ok(None) => {}
        Some(Member::Str(t)) if typ_ok(Some(t)) => {}
        Some(Member::Str(t)) => return Err(TokenError::WrongType(t.to_string())),
        Some(other) => return Err(TokenError::WrongType(other.to_string())),
        None => return Err(TokenError::WrongType(String::new())),
    }
    if compact.header.contains("crit") {
        // No extension is understood, so RFC 7515 §4.1.11 requires rejection.
        return Err(TokenError::Malformed("unsupported crit header".into()));
    }
    let kid = match compact.header.get("kid") {
        Some(Member::Str(k)) if !k.is_empty() => k.as_ref(),
        None => return Err(TokenError::MissingKid),
        Some(_) => {
            return Err(TokenError::Malformed(
                "kid is not a non-empty string".into(),
            ))
        }
    };
    let iss = match compact.claims.get("iss") {
        Some(Member::Str(i)) => i.as_ref(),
        None => return Err(TokenError::MissingClaim("iss")),
        Some(m) if m.is_null() => return Err(TokenError::MissingClaim("iss")),
        Some(other) => {
            return Err(TokenError::InvalidClaim {
                claim: "iss",
                why: format!("expected a string, found {other}"),
            })
        }
    };
    let key = keys.key(iss, kid)?;
    if key.algorithm() != alg {
        return Err(TokenError::AlgKeyMismatch {
            alg: alg.to_string(),
            kid: kid.into(),
            key_alg: key.algorithm().to_string(),
        });
    }
    Ok((compact, key))
}

/// Reads `alg` and refuses anything outside the allow-list (`none`, HMAC, RSA, ...).
pub(crate) fn header_algorithm(header: &Members<'_>) -> Result<Algorithm, TokenError> {
    match header.get("alg") {
        Some(Member::Str(a)) => {
            Algorithm::from_jose(a).ok_or_else(|| TokenError::AlgNotAllowed(a.to_string()))
        }
        Some(other) => Err(TokenError::AlgNotAllowed(other.to_string())),
        None => Err(TokenError::Malformed("header has no alg".into())),
    }
}

fn check_times(c: &Claims, opts: &VerifyOptions) -> Result<(), TokenError> {
    if c.exp <= c.iat {
        return Err(TokenError::InvalidClaim {
            claim: "exp",
            why: "exp is not after iat".into(),
        });
    }
    if c.exp - c.iat > MAX_LIFETIME_SECS {
        return Err(TokenError::LifetimeTooLong {
            secs: c.exp - c.iat,
            max: MAX_LIFETIME_SECS,
        });
    }
    if c.iat > opts.now + opts.clock_skew_secs {
        return Err(TokenError::NotYetValid {
            iat: c.iat,
            now: opts.now,
        });
    }
    if opts.expired(c.exp) {
        return Err(TokenError::Expired {
            exp: c.exp,
            now: opts.now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::mint::{mint, TokenRequest};
    use crate::Nature;

    fn setup(alg: Algorithm) -> (SigningKey, IssuerKeys) {
        let key = SigningKey::generate(alg, "k1").unwrap();
        let set = BTreeMap::from([("k1".to_string(), key.verifying_key())]);
        (key, BTreeMap::from([("esp1".to_string(), set)]))
    }

    #[test]
    fn mint_then_verify_both_algorithms() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let (key, keys) = setup(alg);
            let req = TokenRequest::new(
                "esp1",
                "acct-7",
                Nature::Marketing,
                "Bob@Example.org",
                1_000_000,
            );
            let (token, claims) = mint(&key, &req).unwrap();
            assert!(token.len() < 400, "token is {} bytes", token.len());
            let opts = VerifyOptions {
                now: 1_000_100,
                clock_skew_secs: 60,
            };
            assert_eq!(verify(&token, &keys, &opts).unwrap(), claims);
            assert_eq!(claims.rdm, "example.org");
        }
    }

    #[test]
    fn skew_boundaries() {
        let (key, keys) = setup(Algorithm::EdDSA);
        let req = TokenRequest::new("esp1", "s", Nature::Account, "a@b.example", 10_000);
        let (token, c) = mint(&key, &req).unwrap();
        let at = |now| {
            verify(
                &token,
                &keys,
                &VerifyOptions {
                    now,
                    clock_skew_secs: 60,
                },
            )
        };
        assert!(at(10_000 - 60).is_ok());
        assert_eq!(at(10_000 - 61).unwrap_err().reason(), "not-yet-valid");
        assert!(at(c.exp + 59).is_ok());
        assert_eq!(at(c.exp + 60).unwrap_err().reason(), "expired");
    }
}
