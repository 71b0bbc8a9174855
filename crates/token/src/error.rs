use thiserror::Error;

/// Why a token was refused. Each variant has a stable machine-readable
/// [`reason`](TokenError::reason) that APIs return and test vectors name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// The token is longer than [`crate::MAX_TOKEN_LEN`].
    #[error("token is {len} bytes, more than the {max} allowed")]
    Oversize { len: usize, max: usize },
    /// The token contains a byte outside printable ASCII.
    #[error("token contains a non-ASCII or control character at byte {at}")]
    NonAscii { at: usize },
    /// Not three base64url segments with a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not `EdDSA` or `ES256` (this includes `none` and every HMAC).
    #[error("algorithm {0:?} is not allowed")]
    AlgNotAllowed(String),
    /// The header's `alg` does not match the algorithm of the key named by `kid`.
    #[error("algorithm {alg} does not match key {kid} ({key_alg})")]
    AlgKeyMismatch {
        alg: String,
        kid: String,
        key_alg: String,
    },
    /// The header's `typ` is not [`crate::TOKEN_TYPE`].
    #[error("token type {0:?} is not {expected:?}", expected = crate::TOKEN_TYPE)]
    WrongType(String),
    /// The header has no `kid`.
    #[error("header has no kid")]
    MissingKid,
    /// The `iss` is not a registered ESP.
    #[error("issuer {0:?} is not registered")]
    UnknownIssuer(String),
    /// The issuer has no key with this `kid` (never published, or revoked).
    #[error("issuer {iss:?} has no key {kid:?}")]
    UnknownKid { iss: String, kid: String },
    /// The `kid` belongs to another participant than the one the token claims to be from.
    #[error("key {kid:?} is registered to {owner:?}, not to {iss:?}")]
    ForeignKey {
        iss: String,
        kid: String,
        owner: String,
    },
    /// The signature does not verify with the issuer's key.
    #[error("signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or format.
    #[error("invalid claim {claim}: {why}")]
    InvalidClaim { claim: &'static str, why: String },
    /// `nat` is not one of the declared natures.
    #[error("nature {0:?} is not one of transactional, account, personal, notification, newsletter, marketing")]
    BadNature(String),
    /// `exp` is in the past (beyond the allowed clock skew).
    #[error("token expired at {exp}, now is {now}")]
    Expired { exp: i64, now: i64 },
    /// `iat` is in the future (beyond the allowed clock skew).
    #[error("token issued at {iat}, in the future (now is {now})")]
    NotYetValid { iat: i64, now: i64 },
    /// `exp - iat` exceeds the maximum lifetime.
    #[error("lifetime of {secs} s exceeds the maximum of {max} s")]
    LifetimeTooLong { secs: i64, max: i64 },
}

impl TokenError {
    /// The stable machine-readable reason (kebab-case) for APIs, metrics and test vectors.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Oversize { .. } => "oversize",
            TokenError::NonAscii { .. } => "non-ascii",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgNotAllowed(_) => "alg-not-allowed",
            TokenError::AlgKeyMismatch { .. } => "alg-key-mismatch",
            TokenError::WrongType(_) => "wrong-type",
            TokenError::MissingKid => "missing-kid",
            TokenError::UnknownIssuer(_) => "unknown-issuer",
            TokenError::UnknownKid { .. } => "unknown-kid",
            TokenError::ForeignKey { .. } => "key-of-another-participant",
            TokenError::BadSignature => "bad-signature",
            TokenError::MissingClaim(_) => "missing-claim",
            TokenError::InvalidClaim { .. } => "invalid-claim",
            TokenError::BadNature(_) => "bad-nature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not-yet-valid",
            TokenError::LifetimeTooLong { .. } => "lifetime-too-long",
        }
    }

    /// Every reason [`reason`](TokenError::reason) can return, for documentation and metrics.
    pub const REASONS: &'static [&'static str] = &[
        "oversize",
        "non-ascii",
        "malformed",
        "alg-not-allowed",
        "alg-key-mismatch",
        "wrong-type",
        "missing-kid",
        "unknown-issuer",
        "unknown-kid",
        "key-of-another-participant",
        "bad-signature",
        "missing-claim",
        "invalid-claim",
        "bad-nature",
        "expired",
        "not-yet-valid",
        "lifetime-too-long",
    ];
}
