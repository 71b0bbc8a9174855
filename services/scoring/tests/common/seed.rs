//! Rows for the scoring tests, written straight into ClickHouse.

use ricochet_integration_tests::{complaint_row, insert_rows};
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow};

/// `senders` ids of `esp` named `prefix-i`, each with `delivered` messages
/// (reported per campaign and From domain when they have one) and
/// `complaints` complaints.
pub async fn seed(
    ch: &ClickHouseConfig,
    esp: &str,
    prefix: &str,
    senders: usize,
    (delivered, complaints): (u64, u64),
    (campaign, from_domain): (&str, &str),
    at_ms: i64,
) {
    let mut deliveries = vec![];
    let mut rows: Vec<ComplaintRow> = vec![];
    for i in 0..senders {
        let sender = format!("{prefix}-{i}");
        deliveries.push(DeliveryRow {
            esp: esp.into(),
            sender: sender.clone(),
            provider: "p1.example".into(),
            campaign: campaign.into(),
            from_domain: from_domain.into(),
            hour: (at_ms / 1000 / 3600 * 3600) as u32,
            delivered,
            received_at: at_ms,
        });
        for n in 0..complaints {
            let jti = format!("{esp}-{sender}-{n:08}").replace('.', "_");
            rows.push(ComplaintRow {
                campaign: campaign.into(),
                from_domain: from_domain.into(),
                ..complaint_row(&jti, esp, &sender, "p1.example", "unwanted", at_ms - 1000)
            });
        }
    }
    insert_rows(ch, "deliveries", &deliveries).await;
    insert_rows(ch, "complaints", &rows).await;
}
