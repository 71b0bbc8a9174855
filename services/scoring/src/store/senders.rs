//! What a sender's rows say about it besides its counts: the campaigns and
//! From domains it carried (`complaints`, `deliveries`).

use clickhouse::Client;

/// The (campaign, From domain) pairs `sender` of `esp` carried in the last
/// 30 days, at most `limit`, in order.
pub async fn carried(
    client: &Client,
    esp: &str,
    sender: &str,
    limit: u64,
) -> crate::error::Result<Vec<(String, String)>> {
    client
        .query(
            "SELECT DISTINCT campaign, from_domain FROM (
                 SELECT campaign, from_domain FROM complaints WHERE esp = ? AND sender = ?
                   AND reported_at >= now64(3) - INTERVAL 30 DAY
                 UNION ALL
                 SELECT campaign, from_domain FROM deliveries WHERE esp = ? AND sender = ?
                   AND hour >= now() - INTERVAL 30 DAY)
             ORDER BY campaign, from_domain LIMIT ?",
        )
        .bind(esp)
        .bind(sender)
        .bind(esp)
        .bind(sender)
        .bind(limit)
        .fetch_all()
        .await
        .map_err(Into::into)
}
