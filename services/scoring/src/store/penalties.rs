//! The `penalties` table: every ESP's hash chain of tier changes (the
//! chain's rules are in [`crate::chain`]). Written by the scorer only;
//! read by the scorer at start, the dispatcher, the APIs and the audit.

use std::collections::BTreeMap;

use clickhouse::{Client, Row};
use ricochet_kafka::{Level, Tier, UnknownLevel, UnknownTier};
use serde::Deserialize;

use crate::chain::PenaltyEntry;
use crate::listed::ListedKey;
use crate::partition::Partition;
use crate::ScoringError;

/// The columns of `penalties` as [`PenaltyEntry`] reads them.
pub const PENALTY_COLUMNS: &str = "esp, seq, toString(level) AS level, sender, at_ms, \
     toString(from_tier) AS from_tier, toString(to_tier) AS to_tier, toString(rule) AS rule, \
     evidence, prev_hash, hash";

/// The newest entry of one ESP's chain.
#[derive(Row, Deserialize)]
pub struct ChainHead {
    /// ESP id.
    pub esp: String,
    /// Its position.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// The newest entry of the chain of every ESP of the partition (where its
/// scorer resumes sealing).
pub async fn chain_heads(client: &Client, part: Partition) -> crate::error::Result<Vec<ChainHead>> {
    client
        .query(&format!("SELECT toString(esp) AS esp, max(p.seq) AS seq, argMax(p.hash, p.seq) AS hash FROM penalties AS p WHERE {} GROUP BY esp", part.esps_of("p.esp")))
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// Reads one ESP's penalty chain in order.
pub async fn penalty_chain(client: &Client, esp: &str) -> crate::error::Result<Vec<PenaltyEntry>> {
    client
        .query(&format!(
            "SELECT {PENALTY_COLUMNS} FROM penalties WHERE esp = ? ORDER BY seq"
        ))
        .bind(esp)
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// Reads one ESP's penalty log after `since`, at most `limit` rows, in
/// order (the offenders API and the dispatcher page through it alike).
pub async fn read_after(
    client: &Client,
    esp: &str,
    since: u64,
    limit: u64,
) -> crate::error::Result<Vec<PenaltyEntry>> {
    client
        .query(&format!(
            "SELECT {PENALTY_COLUMNS} FROM penalties WHERE esp = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(esp)
        .bind(since)
        .bind(limit)
        .fetch_all()
        .await
        .map_err(Into::into)
}

#[derive(Row, Deserialize)]
struct ToldRow {
    esp: String,
    domain: String,
    tier: String,
}

/// Per (ESP of the partition, From domain), the tier the ESP's chain last
/// gave the domain.
pub async fn domain_tiers_told(
    client: &Client,
    part: Partition,
) -> crate::error::Result<Vec<(String, String, Tier)>> {
    let rows: Vec<ToldRow> = client
        .query(&format!("SELECT toString(esp) AS esp, sender AS domain, argMax(toString(to_tier), seq) AS tier FROM penalties WHERE level = 'domain' AND {} GROUP BY esp, domain", part.esps()))
        .fetch_all()
        .await?;
    rows.into_iter()
        .map(|r| {
            let tier = r
                .tier
                .parse()
                .map_err(ScoringError::stored::<UnknownTier>("penalties"))?;
            Ok((r.esp, r.domain, tier))
        })
        .collect()
}

#[derive(Row, Deserialize)]
struct SinceRow {
    level: String,
    esp: String,
    key: String,
    since_ms: i64,
}

/// When each key last changed tier, from the penalty log: what a board
/// built after a restart dates its listings from. A domain's changes are
/// in the chains of the ESPs that carry it; the newest counts.
pub async fn known_since(client: &Client) -> crate::error::Result<BTreeMap<ListedKey, i64>> {
    let rows: Vec<SinceRow> = client
        .query(
            "SELECT level, esp, key, max(at_ms) AS since_ms FROM (
                 SELECT toString(level) AS level, if(level = 'domain', '', toString(esp)) AS esp,
                        sender AS key, at_ms
                 FROM penalties)
             GROUP BY level, esp, key",
        )
        .fetch_all()
        .await?;
    rows.into_iter()
        .map(|r| {
            let level = (r.level.parse::<Level>())
                .map_err(ScoringError::stored::<UnknownLevel>("penalties"))?;
            Ok(((level, r.esp, r.key), r.since_ms))
        })
        .collect()
}

/// When `key` at `level` of `esp` last changed tier (Unix ms), from the
/// penalty log; `None` if it never left `ok`. A domain's changes are in the
/// chains of every ESP that carries it.
pub async fn tier_since(
    client: &Client,
    level: Level,
    esp: &str,
    key: &str,
) -> crate::error::Result<Option<i64>> {
    let newest: Vec<i64> = client
        .query(
            "SELECT max(at_ms) FROM penalties WHERE level = ? AND sender = ? AND (esp = ? OR level = 'domain')
             HAVING count() > 0",
        )
        .bind(level.as_str())
        .bind(key)
        .bind(esp)
        .fetch_all()
        .await?;
    Ok(newest.first().copied())
}
