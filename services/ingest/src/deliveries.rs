//! `POST /v1/deliveries`: delivered-message counts, the denominator of every rate.

use ricochet_kafka::DeliveryRecord;
use ricochet_registry::Registry;
use ricochet_token::claims::{is_domain, is_sender_id};
use serde::{Deserialize, Serialize};

use crate::complaints::Rejection;
use crate::timefmt::parse_rfc3339_ms;

/// Oldest hour a report may be for: 60 days, the longest token lifetime.
pub const MAX_AGE_SECS: i64 = 60 * 86_400;
/// Largest count for one sender, hour and provider.
pub const MAX_DELIVERED: u64 = 1_000_000_000;

/// Request body.
#[derive(Debug, Deserialize)]
pub struct DeliveryBatch {
    /// The counts, at most the configured item limit.
    pub deliveries: Vec<DeliveryItem>,
}

/// One count as a provider reports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DeliveryItem {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Campaign (the tokens' `cmp`), when the provider breaks its count
    /// down by campaign. A sender's count is the sum over its campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// From domain (the tokens' `dom`), when the provider breaks its count
    /// down by domain: the denominator of the domain level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_domain: Option<String>,
    /// Start of the hour (RFC 3339, on the hour).
    pub hour: String,
    /// Messages from this sender delivered to this provider's users in that hour
    /// (the full count: a later report for the same hour replaces this one).
    #[serde(deserialize_with = "whole_number")]
    pub delivered: u64,
}

/// A JSON integer as JSON Schema defines it: `12` and `12.0` alike (a number
/// with no fractional part), non-negative and within u64.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        // 2^64 itself rounds to `u64::MAX as f64`: the bound is exclusive.
        Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => {
            Ok(f as u64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a whole number of messages"
        ))),
    }
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// Checks one delivery count reported by `provider`.
pub fn check_delivery(
    item: &DeliveryItem,
    provider: &str,
    registry: &Registry,
    received_at_ms: i64,
) -> Result<DeliveryRecord, Rejection> {
    if registry.esp(&item.esp).is_none() {
        return Err(reject(
            "unknown-esp",
            format!("{:?} is not a registered ESP", item.esp),
        ));
    }
    if !is_sender_id(&item.sender) {
        return Err(reject(
            "invalid-sender",
            "sender must be 1-128 of A-Z a-z 0-9 . _ : @ + -",
        ));
    }
    if item.campaign.as_deref().is_some_and(|c| !is_sender_id(c)) {
        return Err(reject(
            "invalid-campaign",
            "campaign must be 1-128 of A-Z a-z 0-9 . _ : @ + -",
        ));
    }
    if item.from_domain.as_deref().is_some_and(|d| !is_domain(d)) {
        return Err(reject(
            "invalid-from-domain",
            "from_domain must be a lower-case IDNA A-label domain (as the token's dom)",
        ));
    }
    let hour_ms = parse_rfc3339_ms(&item.hour).map_err(|e| reject("bad-hour", e))?;
    if hour_ms % 3_600_000 != 0 {
        return Err(reject(
            "hour-not-aligned",
            "hour must be the start of an hour (e.g. 2026-11-22T13:00:00Z)",
        ));
    }
    let hour = hour_ms / 1000;
    if hour_ms > received_at_ms {
        return Err(reject("hour-in-future", "hour has not started yet"));
    }
    if hour < received_at_ms / 1000 - MAX_AGE_SECS {
        return Err(reject("hour-too-old", "hour is more than 60 days ago"));
    }
    if item.delivered > MAX_DELIVERED {
        return Err(reject(
            "delivered-out-of-range",
            format!("delivered must be at most {MAX_DELIVERED}"),
        ));
    }
    Ok(DeliveryRecord {
        esp: item.esp.clone(),
        sender: item.sender.clone(),
        campaign: item.campaign.clone(),
        from_domain: item.from_domain.clone(),
        provider: provider.to_string(),
        hour,
        delivered: item.delivered,
        received_at_ms,
    })
}

#[cfg(test)]
mod whole_number_tests {
    use super::DeliveryItem;

    fn delivered(json: &str) -> Result<u64, serde_json::Error> {
        serde_json::from_str::<DeliveryItem>(&format!(
            r#"{{"esp": "e.example", "sender": "s", "hour": "2026-01-01T00:00:00Z", "delivered": {json}}}"#
        ))
        .map(|i| i.delivered)
    }

    #[test]
    fn delivered_counts_are_json_schema_integers() {
        assert_eq!(delivered("12").unwrap(), 12);
        // JSON Schema calls 12.0 an integer, so the API takes it.
        assert_eq!(delivered("12.0").unwrap(), 12);
        assert_eq!(delivered("1e3").unwrap(), 1000);
        for bad in ["12.5", "-1", "\"12\"", "1e30", "18446744073709551616"] {
            assert!(delivered(bad).is_err(), "{bad}");
        }
    }
}
