//! The JSON messages on Ricochet's topics. Their JSON Schemas are in
//! `schemas/kafka/`; a test checks that what ingest produces validates.

use serde::{Deserialize, Serialize};

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

/// Appends [`sender_key`]'s bytes to `out`.
pub fn write_sender_key(esp: &str, sender: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(esp.as_bytes());
    out.push(b'/');
    out.extend_from_slice(sender.as_bytes());
}
