//! Turning Kafka records into ClickHouse rows, or into a reason they are poison.

use ricochet_kafka::ComplaintCode;
use ricochet_kafka::{ComplaintRecord, DeliveryRecord};
use ricochet_storage::{ComplaintRow, DeliveryRow};
use ricochet_token::claims::{is_domain, is_participant_id, is_sender_id};
use ricochet_token::Nature;

/// Every [`Poison::reason`].
pub const POISON_REASONS: [&str; 3] = ["empty-payload", "not-json", "invalid-field"];

/// Why a record cannot be loaded. It goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// Machine-readable reason: `empty-payload`, `not-json` or `invalid-field`.
    pub reason: &'static str,
    /// What exactly is wrong.
    pub detail: String,
}

fn invalid(detail: impl Into<String>) -> Poison {
    Poison {
        reason: "invalid-field",
        detail: detail.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: Option<&[u8]>) -> Result<T, Poison> {
    let bytes = payload.filter(|p| !p.is_empty()).ok_or(Poison {
        reason: "empty-payload",
        detail: "record has no value".into(),
    })?;
    serde_json::from_slice(bytes).map_err(|e| Poison {
        reason: "not-json",
        detail: format!("not a valid message: {e}"),
    })
}

fn seconds(name: &str, v: i64) -> Result<u32, Poison> {
    u32::try_from(v).map_err(|_| invalid(format!("{name} {v} is outside 1970..2106")))
}

/// Decodes and checks a `complaints.v1` record.
pub fn complaint(
    payload: Option<&[u8]>,
    partition: i32,
    offset: i64,
) -> Result<ComplaintRow, Poison> {
    let r: ComplaintRecord = parse(payload)?;
    let jti_ok = (22..=64).contains(&r.jti.len())
        && r.jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !jti_ok {
        return Err(invalid(format!(
            "jti {:?} is not 22-64 base64url characters",
            r.jti
        )));
    }
    for (name, id) in [("esp", &r.esp), ("provider", &r.provider)] {
        if !is_participant_id(id) {
            return Err(invalid(format!("{name} {id:?} is not a participant id")));
        }
    }
    if !is_sender_id(&r.sender) {
        return Err(invalid(format!("sender {:?} is not a sender id", r.sender)));
    }
    if let Err(e) = r.code.parse::<ComplaintCode>() {
        return Err(invalid(e.to_string()));
    }
    r.nature
        .parse::<Nature>()
        .map_err(|_| invalid(format!("nature {:?} is unknown", r.nature)))?;
    if r.token_exp <= r.token_iat {
        return Err(invalid("token_exp is not after token_iat"));
    }
    Ok(ComplaintRow {
        token_iat: seconds("token_iat", r.token_iat)?,
        token_exp: seconds("token_exp", r.token_exp)?,
        jti: r.jti,
        esp: r.esp,
        sender: r.sender,
        provider: r.provider,
        code: r.code,
        nature: r.nature,
        campaign: r.campaign.unwrap_or_default(),
        recipient_domain: r.recipient_domain,
        from_domain: r.from_domain.unwrap_or_default(),
        reporter: r.reporter.unwrap_or_default(),
        rcb: r.rcb.unwrap_or_default(),
        recipient_proven: r.recipient_proven,
        reported_at: r.reported_at_ms,
        received_at: r.received_at_ms,
        kafka_partition: partition as u32,
        kafka_offset: offset as u64,
    })
}

/// Decodes and checks a `deliveries.v1` record.
pub fn delivery(payload: Option<&[u8]>) -> Result<DeliveryRow, Poison> {
    let r: DeliveryRecord = parse(payload)?;
    for (name, id) in [("esp", &r.esp), ("provider", &r.provider)] {
        if !is_participant_id(id) {
            return Err(invalid(format!("{name} {id:?} is not a participant id")));
        }
    }
    if !is_sender_id(&r.sender) {
        return Err(invalid(format!("sender {:?} is not a sender id", r.sender)));
    }
    if let Some(c) = r.campaign.as_deref().filter(|c| !is_sender_id(c)) {
        return Err(invalid(format!("campaign {c:?} is not a campaign id")));
    }
    if let Some(d) = r.from_domain.as_deref().filter(|d| !is_domain(d)) {
        return Err(invalid(format!(
            "from_domain {d:?} is not a lower-case A-label domain"
        )));
    }
    if r.hour % 3600 != 0 {
        return Err(invalid(format!(
            "hour {} is not the start of an hour",
            r.hour
        )));
    }
    Ok(DeliveryRow {
        hour: seconds("hour", r.hour)?,
        esp: r.esp,
        sender: r.sender,
        provider: r.provider,
        campaign: r.campaign.unwrap_or_default(),
        from_domain: r.from_domain.unwrap_or_default(),
        delivered: r.delivered,
        received_at: r.received_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_reasons() {
        assert_eq!(complaint(None, 0, 0).unwrap_err().reason, "empty-payload");
        assert_eq!(
            complaint(Some(b"{nope"), 0, 0).unwrap_err().reason,
            "not-json"
        );
        assert_eq!(
            complaint(Some(b"{\"jti\":1}"), 0, 0).unwrap_err().reason,
            "not-json"
        );
        let bad_code = serde_json::json!({
            "jti": "AAAAAAAAAAAAAAAAAAAAAA", "esp": "e.example", "sender": "s", "provider": "p.example",
            "code": "meh", "nature": "marketing", "recipient_domain": "x.example", "recipient_proven": false,
            "token_iat": 1, "token_exp": 2, "reported_at_ms": 1, "received_at_ms": 1, "token": "t"
        });
        let err = complaint(Some(bad_code.to_string().as_bytes()), 0, 0).unwrap_err();
        assert_eq!(err.reason, "invalid-field");
        assert!(err.detail.contains("code"));
        assert_eq!(delivery(Some(b"{\"esp\":\"e.example\",\"sender\":\"s\",\"provider\":\"p.example\",\"hour\":7,\"delivered\":1,\"received_at_ms\":1}")).unwrap_err().reason, "invalid-field");
        let with = |campaign: &str| {
            serde_json::json!({"esp": "e.example", "sender": "s", "campaign": campaign, "provider": "p.example",
                               "hour": 3600, "delivered": 1, "received_at_ms": 1})
            .to_string()
        };
        assert_eq!(
            delivery(Some(with("c-1").as_bytes())).unwrap().campaign,
            "c-1"
        );
        let err = delivery(Some(with("no spaces").as_bytes())).unwrap_err();
        assert_eq!(
            (err.reason, err.detail.contains("campaign")),
            ("invalid-field", true)
        );
    }
}
