//! The claims of a complaint token and the format rules each one must satisfy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::TokenError;
use crate::members::{Member, Members};

/// Default token lifetime: 14 days, long enough for a recipient to read and report.
pub const DEFAULT_LIFETIME_SECS: i64 = 14 * 86_400;
/// Longest lifetime a token may declare (`exp - iat`): 60 days.
pub const MAX_LIFETIME_SECS: i64 = 60 * 86_400;
/// Shortest `jti`: 22 base64url characters carry at least 128 bits.
pub const MIN_JTI_LEN: usize = 22;
/// Longest `jti`.
pub const MAX_JTI_LEN: usize = 64;
/// Longest `sub` or `cmp`.
pub const MAX_ID_LEN: usize = 128;

/// What the sender declared the message to be (`nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nature {
    /// A receipt, confirmation or similar message the recipient triggered.
    Transactional,
    /// A message about the recipient's account (security, billing, terms).
    Account,
    /// A one-to-one message from a person.
    Personal,
    /// An automated notification the recipient subscribed to.
    Notification,
    /// Editorial content the recipient subscribed to.
    Newsletter,
    /// Promotional mail.
    Marketing,
}

impl Nature {
    /// Every nature, in declaration order.
    pub const ALL: [Nature; 6] = [
        Nature::Transactional,
        Nature::Account,
        Nature::Personal,
        Nature::Notification,
        Nature::Newsletter,
        Nature::Marketing,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Nature::Transactional => "transactional",
            Nature::Account => "account",
            Nature::Personal => "personal",
            Nature::Notification => "notification",
            Nature::Newsletter => "newsletter",
            Nature::Marketing => "marketing",
        }
    }
}

impl fmt::Display for Nature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Nature {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        Nature::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| TokenError::BadNature(s.to_string()))
    }
}

/// The verified claims of a complaint token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// ESP id (a registered participant).
    pub iss: String,
    /// Sender id: the ESP's customer or account that sent the message.
    pub sub: String,
    /// Unique token id (≥ 128 random bits, base64url).
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Declared nature of the message.
    pub nat: Nature,
    /// Campaign id, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmp: Option<String>,
    /// Recipient domain: lower-case IDNA A-label.
    pub rdm: String,
    /// Recipient binding: see [`crate::binding`].
    pub rcb: String,
    /// The message's RFC 5322.From domain (lower-case IDNA A-label),
    /// optional: the key of the domain reputation level, so a sender that
    /// moves between ESPs keeps its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dom: Option<String>,
}

impl Claims {
    /// Reads and format-checks claims from a decoded JSON object. Time rules are
    /// checked by [`crate::verify`], which knows the clock.
    pub(crate) fn from_members(mut members: Members<'_>) -> Result<Self, TokenError> {
        let map = &mut members;
        let iss = string(map, "iss")?;
        check_participant_id("iss", &iss)?;
        let sub = string(map, "sub")?;
        check_id("sub", &sub)?;
        let jti = string(map, "jti")?;
        check_jti(&jti)?;
        let iat = integer(map, "iat")?;
        let exp = integer(map, "exp")?;
        let nat: Nature = string(map, "nat")?.parse()?;
        let cmp = optional_string(map, "cmp")?;
        if let Some(c) = &cmp {
            check_id("cmp", c)?;
        }
        let rdm = string(map, "rdm")?;
        check_domain("rdm", &rdm)?;
        let rcb = string(map, "rcb")?;
        check_rcb(&rcb)?;
        let dom = optional_string(map, "dom")?;
        if let Some(d) = &dom {
            check_domain("dom", d)?;
        }
        Ok(Claims {
            iss,
            sub,
            jti,
            iat,
            exp,
            nat,
            cmp,
            rdm,
            rcb,
            dom,
        })
    }

    /// Checks every format rule (used before minting, so no ESP signs a token ingest would refuse).
    pub fn check_format(&self) -> Result<(), TokenError> {
        let json = serde_json::to_vec(self)
            .map_err(|_| TokenError::Malformed("claims do not serialize".into()))?;
        let members = Members::parse(&json, "claims").map_err(TokenError::Malformed)?;
        Claims::from_members(members).map(|_| ())
    }
}

fn invalid(claim: &'static str, why: impl Into<String>) -> TokenError {
    TokenError::InvalidClaim {
        claim,
        why: why.into(),
    }
}

/// Takes the string claim out of `map`.
fn string(map: &mut Members<'_>, claim: &'static str) -> Result<String, TokenError> {
    optional_string(map, claim)?.ok_or(TokenError::MissingClaim(claim))
}

/// Takes the string claim out of `map`; `None` if absent or `null`.
fn optional_string(
    map: &mut Members<'_>,
    claim: &'static str,
) -> Result<Option<String>, TokenError> {
    match map.take(claim) {
        None => Ok(None),
        Some(Member::Str(s)) => Ok(Some(s.into_owned())),
        Some(m) if m.is_null() => Ok(None),
        Some(other) => Err(invalid(claim, format!("expected a string, found {other}"))),
    }
}

fn integer(map: &Members<'_>, claim: &'static str) -> Result<i64, TokenError> {
    match map.get(claim) {
        None => Err(TokenError::MissingClaim(claim)),
        Some(m) if m.is_null() => Err(TokenError::MissingClaim(claim)),
        Some(Member::Other(Value::Number(n))) => n.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
            invalid(
                claim,
                format!("expected whole seconds since the epoch, found {n}"),
            )
        }),
        Some(other) => Err(invalid(
            claim,
            format!("expected an integer, found {other}"),
        )),
    }
}

/// Participant ids (ESPs, providers): lower-case letters, digits, `.` and `-`, 1–63 chars.
pub fn is_participant_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && id.as_bytes()[0].is_ascii_alphanumeric()
}

fn check_participant_id(claim: &'static str, id: &str) -> Result<(), TokenError> {
    if is_participant_id(id) {
        Ok(())
    } else {
        Err(invalid(
            claim,
            "expected 1-63 lower-case letters, digits, '.' or '-', starting alphanumeric",
        ))
    }
}

/// Sender and campaign ids: 1-128 of `A-Z a-z 0-9 . _ : @ + -`.
pub fn is_sender_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@+-".contains(&b))
}

fn check_id(claim: &'static str, id: &str) -> Result<(), TokenError> {
    if is_sender_id(id) {
        Ok(())
    } else {
        Err(invalid(
            claim,
            format!("expected 1-{MAX_ID_LEN} characters from A-Z a-z 0-9 . _ : @ + -"),
        ))
    }
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_jti(jti: &str) -> Result<(), TokenError> {
    if (MIN_JTI_LEN..=MAX_JTI_LEN).contains(&jti.len()) && is_base64url(jti) {
        Ok(())
    } else {
        Err(invalid(
            "jti",
            format!("expected {MIN_JTI_LEN}-{MAX_JTI_LEN} base64url characters (at least 128 random bits)"),
        ))
    }
}

fn check_rcb(rcb: &str) -> Result<(), TokenError> {
    if rcb.len() == crate::binding::BINDING_LEN && is_base64url(rcb) {
        Ok(())
    } else {
        Err(invalid(
            "rcb",
            "expected 22 base64url characters (16 bytes of SHA-256)",
        ))
    }
}

/// Normalizes a recipient domain to the lower-case IDNA A-label form `rdm` requires.
pub fn normalize_domain(domain: &str) -> Result<String, TokenError> {
    normalize_domain_of("rdm", domain)
}

/// Whether `domain` is a lower-case IDNA A-label domain of two labels or
/// more (the form of `rdm` and `dom`).
pub fn is_domain(domain: &str) -> bool {
    check_domain("dom", domain).is_ok()
}

/// [`normalize_domain`] for the domain claim `claim` (`rdm`, `dom`).
pub fn normalize_domain_of(claim: &'static str, domain: &str) -> Result<String, TokenError> {
    let ascii = idna::domain_to_ascii(domain.trim_end_matches('.'))
        .map_err(|e| invalid(claim, format!("not a valid domain: {e}")))?;
    check_domain(claim, &ascii)?;
    Ok(ascii)
}

fn check_domain(claim: &'static str, domain: &str) -> Result<(), TokenError> {
    if domain.is_empty() || domain.len() > 253 || !domain.contains('.') {
        return Err(invalid(
            claim,
            "expected a domain name with at least two labels",
        ));
    }
    match idna::domain_to_ascii_strict(domain) {
        Ok(ascii) if ascii == domain => Ok(()),
        Ok(ascii) => Err(invalid(
            claim,
            format!("expected the lower-case A-label form {ascii:?}"),
        )),
        Err(e) => Err(invalid(claim, format!("not a valid domain: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_must_be_lower_case_a_labels() {
        assert!(check_domain("rdm", "example.com").is_ok());
        assert!(check_domain("rdm", "xn--bcher-kva.example").is_ok());
        assert!(check_domain("rdm", "Example.com").is_err());
        assert!(check_domain("rdm", "bücher.example").is_err());
        assert!(check_domain("rdm", "localhost").is_err());
        assert!(matches!(
            check_domain("dom", "Shop.Example"),
            Err(TokenError::InvalidClaim { claim: "dom", .. })
        ));
        assert_eq!(
            normalize_domain("Bücher.Example.").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn participant_ids() {
        assert!(is_participant_id("esp-1.example"));
        assert!(!is_participant_id("ESP"));
        assert!(!is_participant_id("a/b"));
        assert!(!is_participant_id("-a"));
        assert!(!is_participant_id(""));
    }
}
