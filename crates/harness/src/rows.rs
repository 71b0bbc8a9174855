//! Synthetic rows for benches and tests that write ClickHouse directly.

/// A `complaints` row for benches and tests that write ClickHouse directly: `code` from
/// `provider` about `esp/sender`, reported (and received) at `at_ms`, with a
/// token issued an hour earlier and valid a day.
pub fn complaint_row(
    jti: &str,
    esp: &str,
    sender: &str,
    provider: &str,
    code: &str,
    at_ms: i64,
) -> ricochet_storage::ComplaintRow {
    ricochet_storage::ComplaintRow {
        jti: jti.into(),
        esp: esp.into(),
        sender: sender.into(),
        provider: provider.into(),
        code: code.into(),
        nature: "marketing".into(),
        campaign: String::new(),
        recipient_domain: "mail.example".into(),
        from_domain: String::new(),
        reporter: String::new(),
        rcb: String::new(),
        recipient_proven: false,
        token_iat: (at_ms / 1000 - 3600) as u32,
        token_exp: (at_ms / 1000 + 86_400) as u32,
        reported_at: at_ms,
        received_at: at_ms,
        kafka_partition: 0,
        kafka_offset: 0,
    }
}
