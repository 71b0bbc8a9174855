//! `sender_standing` and `group_standing`: the tier in force of every key
//! not at the default standing, written by the scorer after each run.

use clickhouse::{Client, Row};
use foldhash::{HashMap, HashMapExt};
use ricochet_kafka::{Level, UnknownLevel, UnknownTier};
use serde::{Deserialize, Serialize};

use crate::books::GroupKey;
use crate::counts::SenderKey;
use crate::hysteresis::Standing;
use crate::partition::Partition;
use crate::ScoringError;

/// A row of `sender_standing`.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct StandingRow {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Tier name.
    pub tier: String,
    /// Since when the evidence is below the tier (Unix seconds), if it is.
    pub below_since: Option<i64>,
    /// When the row was written (Unix ms).
    pub updated_at: i64,
}

/// A row of `group_standing`.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct GroupStandingRow {
    /// Level name.
    pub level: String,
    /// ESP id (empty for a domain).
    pub esp: String,
    /// The key at that level.
    pub key: String,
    /// Tier name.
    pub tier: String,
    /// Since when the evidence is below the tier (Unix seconds), if it is.
    pub below_since: Option<i64>,
    /// When the row was written (Unix ms).
    pub updated_at: i64,
}

/// A key's tier in force and since when it is below it (read from a standing table).
#[derive(Row, Deserialize)]
pub struct TierInForce {
    /// Tier name.
    pub tier: String,
    /// Since when the evidence is below the tier (Unix seconds), if it is.
    pub below_since: Option<i64>,
}

/// The standing a stored row holds, or `None` if it is the default (memory
/// keeps only the others).
fn in_force(
    table: &'static str,
    tier: &str,
    below_since: Option<i64>,
) -> crate::error::Result<Option<Standing>> {
    let tier = tier
        .parse()
        .map_err(ScoringError::stored::<UnknownTier>(table))?;
    let s = Standing { tier, below_since };
    Ok((s != Standing::default()).then_some(s))
}

/// The standings in force that differ from the default of the senders of
/// the partition's ESPs.
pub async fn sender_standings(
    client: &Client,
    part: Partition,
) -> crate::error::Result<HashMap<SenderKey, Standing>> {
    let rows: Vec<StandingRow> = client
        .query(&format!("SELECT esp, sender, toString(tier) AS tier, below_since, updated_at FROM sender_standing FINAL WHERE {}", part.esps()))
        .fetch_all()
        .await?;
    let mut standing = HashMap::new();
    for r in rows {
        if let Some(s) = in_force("sender_standing", &r.tier, r.below_since)? {
            standing.insert((r.esp, r.sender), s);
        }
    }
    Ok(standing)
}

/// The standings in force that differ from the default of the partition's
/// groups: those of its ESPs and, for the instance owning the domain
/// level, the domains'.
pub async fn group_standings(
    client: &Client,
    part: Partition,
) -> crate::error::Result<HashMap<GroupKey, Standing>> {
    let mine = format!(
        "(level != 'domain' AND {}) OR (level = 'domain' AND {})",
        part.esps(),
        u8::from(part.owns_domains())
    );
    let rows: Vec<GroupStandingRow> = client
        .query(&format!("SELECT toString(level) AS level, toString(esp) AS esp, key, toString(tier) AS tier, below_since, updated_at FROM group_standing FINAL WHERE {mine}"))
        .fetch_all()
        .await?;
    let mut standing = HashMap::new();
    for r in rows {
        let level = r
            .level
            .parse()
            .map_err(ScoringError::stored::<UnknownLevel>("group_standing"))?;
        if let Some(s) = in_force("group_standing", &r.tier, r.below_since)? {
            standing.insert((level, r.esp, r.key), s);
        }
    }
    Ok(standing)
}

/// Every key's tier in force other than the default, at every level and
/// of every partition (the provider list of partitioned scoring).
pub async fn all_in_force(
    client: &Client,
) -> crate::error::Result<Vec<(crate::listed::ListedKey, ricochet_kafka::Tier)>> {
    let senders = sender_standings(client, Partition::WHOLE).await?;
    let groups = group_standings(client, Partition::WHOLE).await?;
    let senders =
        (senders.into_iter()).map(|((esp, sender), s)| ((Level::Sender, esp, sender), s.tier));
    let groups = groups.into_iter().map(|(key, s)| (key, s.tier));
    Ok(senders.chain(groups).collect())
}

/// The standing in force of `key` at `level` of `esp`, if not the default.
pub async fn tier_in_force(
    client: &Client,
    level: Level,
    esp: &str,
    key: &str,
) -> crate::error::Result<Option<TierInForce>> {
    let query = match level {
        Level::Sender => client
            .query("SELECT toString(tier) AS tier, below_since FROM sender_standing FINAL WHERE esp = ? AND sender = ?")
            .bind(esp)
            .bind(key),
        _ => client
            .query("SELECT toString(tier) AS tier, below_since FROM group_standing FINAL WHERE level = ? AND esp = ? AND key = ?")
            .bind(level.as_str())
            .bind(esp)
            .bind(key),
    };
    query.fetch_optional().await.map_err(Into::into)
}

/// The tiers in `group_standing` of the (level, ESP, key) triples listed:
/// (level, ESP, key, tier) for those not at the default standing.
pub async fn group_tiers(
    client: &Client,
    keys: Vec<(&str, &str, &str)>,
) -> crate::error::Result<Vec<(String, String, String, String)>> {
    client
        .query(
            "SELECT toString(level), toString(esp), key, toString(tier) FROM group_standing FINAL
             WHERE has(?, (toString(level), toString(esp), key))",
        )
        .bind(keys)
        .fetch_all()
        .await
        .map_err(Into::into)
}
