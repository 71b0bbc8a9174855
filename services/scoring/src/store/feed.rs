//! `complaint_feed` and the reads of `complaints` that fill it (see
//! `crate::feed` for how the single writer uses them).

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::partition::Partition;

/// One entry of the feed (a row of `complaint_feed`).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FeedEntry {
    /// ESP id.
    pub esp: String,
    /// Position in the ESP's feed, from 1.
    pub seq: u64,
    /// Token id.
    pub jti: String,
    /// Sender id.
    pub sender: String,
    /// Campaign id, or empty.
    pub campaign: String,
    /// Complaint code.
    pub code: String,
    /// Declared nature.
    pub nature: String,
    /// Provider that reported it.
    pub provider: String,
    /// Recipient domain.
    pub recipient_domain: String,
    /// The token's recipient binding, or empty (rows loaded before it was kept).
    pub rcb: String,
    /// When the user complained (ms).
    pub reported_at: i64,
    /// When the complaint was loaded (ms).
    pub loaded_at: i64,
    /// When the ESP minted the token (ms): no copy of it was loaded long
    /// before (see [`crate::feed::COPY_MARGIN_MS`]).
    pub token_iat: i64,
}

/// The columns of [`FeedEntry`], for reads of `complaint_feed`.
pub const FEED_COLUMNS: &str = "toString(esp) AS esp, seq, jti, sender, campaign, \
    toString(code) AS code, toString(nature) AS nature, toString(provider) AS provider, \
    toString(recipient_domain) AS recipient_domain, rcb, \
    toUnixTimestamp64Milli(reported_at) AS reported_at, toUnixTimestamp64Milli(loaded_at) AS loaded_at, \
    toUnixTimestamp64Milli(token_iat) AS token_iat";

/// The columns of a complaint as the feed reads it (`seq` set later). The
/// aliases shadow columns, so reads filter in a subquery first.
const CANDIDATE_COLUMNS: &str = "toString(esp) AS esp, toUInt64(0) AS seq, jti, sender, campaign, \
    toString(code) AS code, toString(nature) AS nature, toString(provider) AS provider, \
    toString(recipient_domain) AS recipient_domain, rcb, \
    toUnixTimestamp64Milli(reported_at) AS reported_at, toUnixTimestamp64Milli(loaded_at) AS loaded_at, \
    toInt64(toUnixTimestamp(token_iat)) * 1000 AS token_iat";

/// Complaints matching `filter` as feed candidates, in (load time, jti)
/// order, at most `limit` of them. The filter runs in a subquery, before
/// the candidate columns' aliases shadow the table's.
fn candidates_sql(filter: &str, limit: Option<u64>) -> String {
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    format!(
        "SELECT {CANDIDATE_COLUMNS} FROM (
             SELECT * FROM complaints WHERE {filter} ORDER BY loaded_at, jti{limit})
         ORDER BY loaded_at, jti"
    )
}

/// Reads one ESP's feed after `since`, at most `limit` entries, in order.
pub async fn read(
    client: &Client,
    esp: &str,
    since: u64,
    limit: u64,
) -> crate::error::Result<Vec<FeedEntry>> {
    client
        .query(&format!(
            "SELECT {FEED_COLUMNS} FROM complaint_feed WHERE esp = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(esp)
        .bind(since)
        .bind(limit)
        .fetch_all()
        .await.map_err(Into::into)
}

/// The next `seq` less one per ESP of the partition, and the newest load
/// time (ms) fed to them.
pub async fn position(
    client: &Client,
    part: Partition,
) -> crate::error::Result<(Vec<(String, u64)>, i64)> {
    let esps = part.esps();
    let heads: Vec<(String, u64)> = client
        .query(&format!(
            "SELECT toString(esp), max(seq) FROM complaint_feed WHERE {esps} GROUP BY esp"
        ))
        .fetch_all()
        .await?;
    let mark: i64 = client
        .query(&format!(
            "SELECT toInt64(ifNull(max(toUnixTimestamp64Milli(loaded_at)), 0)) FROM complaint_feed WHERE {esps}"
        ))
        .fetch_one()
        .await?;
    Ok((heads, mark))
}

/// Up to `page` complaints of the partition's ESPs after `(at, jti)` in
/// (load time, jti) order, loaded at least `settle_ms` ago by the server's clock.
pub async fn settled_after(
    client: &Client,
    part: Partition,
    (at, jti): (i64, &str),
    (settle_ms, page): (i64, u64),
) -> crate::error::Result<Vec<FeedEntry>> {
    client
        .query(&candidates_sql(
            &format!(
                "loaded_at >= fromUnixTimestamp64Milli(?)
                 AND (loaded_at, jti) > (fromUnixTimestamp64Milli(?), ?)
                 AND loaded_at <= now64(3) - toIntervalMillisecond({settle_ms})
                 AND {}",
                part.esps()
            ),
            Some(page),
        ))
        .bind(at)
        .bind(at)
        .bind(jti)
        .fetch_all()
        .await
        .map_err(Into::into)
}

const LOADED_IN: &str =
    "loaded_at > fromUnixTimestamp64Milli(?) AND loaded_at <= fromUnixTimestamp64Milli(?)";

/// The jtis of complaints of the partition's ESPs loaded in `(from, to]` (ms).
pub async fn jtis_loaded(
    client: &Client,
    part: Partition,
    (from, to): (i64, i64),
) -> crate::error::Result<Vec<String>> {
    client
        .query(&format!(
            "SELECT jti FROM complaints WHERE {LOADED_IN} AND {}",
            part.esps()
        ))
        .bind(from)
        .bind(to)
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// The complaints loaded in `(from, to]` (ms) with one of `jtis`, in order.
pub async fn loaded_among(
    client: &Client,
    (from, to): (i64, i64),
    jtis: Vec<String>,
) -> crate::error::Result<Vec<FeedEntry>> {
    client
        .query(&candidates_sql(
            &format!("{LOADED_IN} AND has(?, jti)"),
            None,
        ))
        .bind(from)
        .bind(to)
        .bind(jtis)
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// Which of `jtis` the feed holds among entries loaded from `from_ms` on.
pub async fn fed_among(
    client: &Client,
    from_ms: i64,
    jtis: Vec<&str>,
) -> crate::error::Result<Vec<String>> {
    client
        .query("SELECT jti FROM complaint_feed WHERE loaded_at >= fromUnixTimestamp64Milli(?) AND has(?, jti)")
        .bind(from_ms)
        .bind(jtis)
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// Up to `page` complaints of the partition's ESPs loaded in `[from,
/// mark]` (ms) missing from the feed.
pub async fn missing(
    client: &Client,
    part: Partition,
    (from, mark_ms): (i64, i64),
    page: u64,
) -> crate::error::Result<Vec<FeedEntry>> {
    client
        .query(&candidates_sql(
            &format!(
                "loaded_at >= fromUnixTimestamp64Milli(?) AND loaded_at <= fromUnixTimestamp64Milli(?)
                 AND jti NOT IN (SELECT jti FROM complaint_feed
                                 WHERE loaded_at >= fromUnixTimestamp64Milli(?))
                 AND {}",
                part.esps()
            ),
            Some(page),
        ))
        .bind(from)
        .bind(mark_ms)
        .bind(from)
        .fetch_all()
        .await
        .map_err(Into::into)
}
