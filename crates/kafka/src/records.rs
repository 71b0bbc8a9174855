//! The JSON messages on Ricochet's topics. Their JSON Schemas are in
//! `schemas/kafka/`; a test checks that what ingest produces validates.

use serde::{Deserialize, Serialize};

/// What the user said about a message: the `code` a provider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComplaintCode {
    /// The user did not want it (the usual "report spam").
    Unwanted,
    /// It pretended to be something it is not.
    Misrepresented,
    /// It broke the provider's policy.
    PolicyViolation,
    /// It tried to steal credentials or money.
    Phishing,
    /// The user had unsubscribed and still got it.
    UnsubscribeIgnored,
    /// The user said it was wanted after all: the positive signal.
    NotSpam,
}

impl ComplaintCode {
    /// Every code, in the order the specs list them.
    pub const ALL: [ComplaintCode; 6] = [
        ComplaintCode::Unwanted,
        ComplaintCode::Misrepresented,
        ComplaintCode::PolicyViolation,
        ComplaintCode::Phishing,
        ComplaintCode::UnsubscribeIgnored,
        ComplaintCode::NotSpam,
    ];

    /// The code as it travels in JSON and is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintCode::Unwanted => "unwanted",
            ComplaintCode::Misrepresented => "misrepresented",
            ComplaintCode::PolicyViolation => "policy-violation",
            ComplaintCode::Phishing => "phishing",
            ComplaintCode::UnsubscribeIgnored => "unsubscribe-ignored",
            ComplaintCode::NotSpam => "not-spam",
        }
    }

    /// Whether the user said the mail was wanted.
    pub fn is_positive(self) -> bool {
        self == ComplaintCode::NotSpam
    }

    /// Every code, comma-separated (for error messages).
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl std::fmt::Display for ComplaintCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `code` that is not one of [`ComplaintCode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code {0:?} is not one of {list}", list = ComplaintCode::list())]
pub struct UnknownCode(pub String);

impl std::str::FromStr for ComplaintCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

/// A complaint that passed every check at ingest (`complaints.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintRecord {
    /// Token id: counted once downstream, however often it arrives.
    pub jti: String,
    /// ESP id (token `iss`).
    pub esp: String,
    /// Sender id (token `sub`).
    pub sender: String,
    /// The provider that submitted it (authenticated caller).
    pub provider: String,
    /// Complaint code.
    pub code: String,
    /// Declared nature (token `nat`).
    pub nature: String,
    /// Campaign (token `cmp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Recipient domain (token `rdm`).
    pub recipient_domain: String,
    /// The message's From domain (token `dom`), if the token carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_domain: Option<String>,
    /// Opaque pseudonym of the complaining user, if the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// The token's recipient binding (`rcb`): the ESP, which knows the
    /// recipient of each `jti`, can check it and suppress that address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcb: Option<String>,
    /// True if the provider proved the recipient binding.
    pub recipient_proven: bool,
    /// Token `iat`, Unix seconds.
    pub token_iat: i64,
    /// Token `exp`, Unix seconds.
    pub token_exp: i64,
    /// When the user complained, Unix milliseconds.
    pub reported_at_ms: i64,
    /// When ingest accepted it, Unix milliseconds.
    pub received_at_ms: i64,
    /// The token itself, so anyone downstream can verify it again.
    pub token: String,
}

/// Delivered-message count for one (esp, sender, hour) from one provider (`deliveries.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Campaign (token `cmp`) when the count is broken down by campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// From domain (token `dom`) when the count is broken down by domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_domain: Option<String>,
    /// The provider that reported it (authenticated caller).
    pub provider: String,
    /// Start of the hour, Unix seconds (a multiple of 3600).
    pub hour: i64,
    /// Messages delivered in that hour (the provider's total, replacing earlier reports).
    pub delivered: u64,
    /// When ingest accepted it, Unix milliseconds.
    pub received_at_ms: i64,
}

/// The message key: `esp/sender`, so one sender's events share a partition and stay ordered.
pub fn sender_key(esp: &str, sender: &str) -> String {
    format!("{esp}/{sender}")
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_named() {
        for c in ComplaintCode::ALL {
            assert_eq!(c.as_str().parse::<ComplaintCode>(), Ok(c));
        }
        let err = "spam".parse::<ComplaintCode>().unwrap_err();
        assert!(err
            .to_string()
            .contains("\"spam\" is not one of unwanted, misrepresented"));
        assert!(ComplaintCode::NotSpam.is_positive() && !ComplaintCode::Phishing.is_positive());
    }
}
