//! Campaign bursts: campaigns with many complaints in the last hour that
//! make up most of their sender's (a flag in the evidence, not a penalty).

use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::partition::Partition;
use crate::policy::Policy;
use crate::verdict::Burst;

#[derive(Row, Deserialize)]
struct BurstAgg {
    esp: String,
    sender: String,
    campaign: String,
    complaints: u64,
}

/// Campaigns of the partition's ESPs over the burst thresholds in the
/// hour before `now_ms`.
pub async fn bursts(
    client: &Client,
    part: Partition,
    policy: &Policy,
    now_ms: i64,
) -> crate::error::Result<Vec<Burst>> {
    let rows: Vec<BurstAgg> = client
        .query(&format!(
            "SELECT esp, sender, campaign, complaints FROM (
                 SELECT esp, sender, campaign, uniqExact(jti) AS complaints,
                        sum(uniqExact(jti)) OVER (PARTITION BY esp, sender) AS sender_total
                 FROM complaints
                 WHERE reported_at >= fromUnixTimestamp64Milli(?) AND reported_at <= fromUnixTimestamp64Milli(?)
                   AND {}
                 GROUP BY esp, sender, campaign)
             WHERE campaign != '' AND complaints >= ? AND complaints >= ? * sender_total
             ORDER BY esp, sender, campaign",
            part.esps()
        ))
        .bind(now_ms - 3_600_000)
        .bind(now_ms)
        .bind(policy.burst_min_complaints)
        .bind(policy.burst_share)
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Burst {
            esp: r.esp,
            sender: r.sender,
            campaign: r.campaign,
            complaints: r.complaints,
        })
        .collect())
}
