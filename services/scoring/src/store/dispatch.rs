//! `penalty_dispatch`: how far each channel (Kafka, webhook) of each outbox
//! has delivered each ESP's entries.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

/// A channel's position in one ESP's outbox.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct Cursor {
    /// `kafka` or `webhook`, with the outbox (see `dispatch::Outbox`).
    pub channel: String,
    /// ESP id.
    pub esp: String,
    /// The last entry the channel accepted.
    pub last_seq: u64,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// When to try again (Unix ms).
    pub next_attempt_ms: i64,
    /// What the last failure said.
    pub last_error: String,
    /// Version of the row (Unix ms, strictly increasing).
    pub updated_at: i64,
}

/// Where `channel` stands for `esp` (from the start if it never sent).
pub async fn cursor(client: &Client, channel: &str, esp: &str) -> crate::error::Result<Cursor> {
    let found: Option<Cursor> = client
            .query("SELECT toString(channel) AS channel, toString(esp) AS esp, last_seq, attempts, next_attempt_ms, last_error, updated_at FROM penalty_dispatch FINAL WHERE channel = ? AND esp = ?")
            .bind(channel)
            .bind(esp)
            .fetch_optional()
            .await?;
    Ok(found.unwrap_or(Cursor {
        channel: channel.into(),
        esp: esp.into(),
        last_seq: 0,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: String::new(),
        updated_at: 0,
    }))
}

/// Writes a cursor as of `now_ms`.
pub async fn save(client: &Client, mut c: Cursor, now_ms: i64) -> crate::error::Result<()> {
    // Strictly increasing versions, even within one millisecond.
    c.updated_at = now_ms.max(c.updated_at + 1);
    super::insert(client, "penalty_dispatch", &[c]).await
}

/// The ESPs of the partition with rows in `table` (`penalties`, `complaint_feed`).
pub async fn esps_in(
    client: &Client,
    table: &str,
    part: crate::partition::Partition,
) -> crate::error::Result<Vec<String>> {
    client
        .query(&format!(
            "SELECT DISTINCT toString(esp) FROM {table} WHERE {}",
            part.esps()
        ))
        .fetch_all()
        .await
        .map_err(Into::into)
}
