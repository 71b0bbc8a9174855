//! Minting tokens (the ESP side).

use ring::rand::{SecureRandom, SystemRandom};

use crate::binding::recipient_binding;
use crate::claims::{normalize_domain, normalize_domain_of, Claims, Nature, DEFAULT_LIFETIME_SECS};
use crate::error::TokenError;
use crate::jws::b64_encode;
use crate::keys::SigningKey;
use crate::TOKEN_TYPE;

/// What an ESP knows when it sends one message.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// ESP id.
    pub iss: String,
    /// Sender id.
    pub sub: String,
    /// Declared nature.
    pub nat: Nature,
    /// Campaign id.
    pub cmp: Option<String>,
    /// RFC 5322.From domain of the message (normalized to its lower-case
    /// A-label when minted), optional.
    pub dom: Option<String>,
    /// Recipient address: only its domain and a one-way binding go into the token.
    pub recipient: String,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Lifetime in seconds (default 14 days).
    pub lifetime_secs: i64,
}

impl TokenRequest {
    /// A request with the default lifetime, issued at `iat`.
    pub fn new(iss: &str, sub: &str, nat: Nature, recipient: &str, iat: i64) -> Self {
        TokenRequest {
            iss: iss.into(),
            sub: sub.into(),
            nat,
            cmp: None,
            dom: None,
            recipient: recipient.into(),
            iat,
            lifetime_secs: DEFAULT_LIFETIME_SECS,
        }
    }

    /// Builds the claims with a fresh random `jti`.
    pub fn claims(&self) -> Result<Claims, TokenError> {
        let mut id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| TokenError::Malformed("system random generator failed".into()))?;
        let jti = b64_encode(&id);
        let domain = self
            .recipient
            .rsplit_once('@')
            .map(|(_, d)| d)
            .ok_or_else(|| TokenError::InvalidClaim {
                claim: "rdm",
                why: format!("recipient {:?} is not an address", self.recipient),
            })?;
        let claims = Claims {
            iss: self.iss.clone(),
            sub: self.sub.clone(),
            rcb: recipient_binding(&jti, &self.recipient),
            jti,
            iat: self.iat,
            exp: self.iat + self.lifetime_secs,
            nat: self.nat,
            cmp: self.cmp.clone(),
            rdm: normalize_domain(domain)?,
            dom: self
                .dom
                .as_deref()
                .map(|d| normalize_domain_of("dom", d))
                .transpose()?,
        };
        claims.check_format()?;
        Ok(claims)
    }
}

/// Mints a token for `request`, returning it with its claims.
pub fn mint(key: &SigningKey, request: &TokenRequest) -> Result<(String, Claims), TokenError> {
    let claims = request.claims()?;
    if claims.exp - claims.iat > crate::claims::MAX_LIFETIME_SECS || claims.exp <= claims.iat {
        return Err(TokenError::LifetimeTooLong {
            secs: claims.exp - claims.iat,
            max: crate::claims::MAX_LIFETIME_SECS,
        });
    }
    let token = crate::jwt::sign(key, TOKEN_TYPE, &claims)?;
    Ok((token, claims))
}

/// Signs an arbitrary claims object with the standard complaint-token header.
/// Exposed for tools that need tokens `mint` would refuse (test vectors).
pub fn sign_claims(key: &SigningKey, claims: &serde_json::Value) -> Result<String, TokenError> {
    crate::jwt::sign(key, TOKEN_TYPE, claims)
}

/// Signs any header and claims objects (the header is taken as given).
pub fn sign_parts(
    key: &SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, TokenError> {
    sign_raw(key, &header.to_string(), &claims.to_string())
}

/// Signs header and claims given as raw JSON text, byte for byte.
pub fn sign_raw(key: &SigningKey, header: &str, claims: &str) -> Result<String, TokenError> {
    let input = format!(
        "{}.{}",
        b64_encode(header.as_bytes()),
        b64_encode(claims.as_bytes())
    );
    let sig = key
        .sign(input.as_bytes())
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    Ok(format!("{input}.{}", b64_encode(&sig)))
}
