//! What the ESP API says about one key at one level: its tier in force, the
//! newest snapshot of each window and an explanation. A sender with too
//! little data of its own is not a clean slate: its report also names the
//! standing of its ESP and of the campaigns and From domains it carries, by
//! which it is judged.

use std::collections::BTreeSet;

use clickhouse::Client;
use serde_json::{json, Value};

use crate::policy::Policy;
use crate::store;
use crate::verdict::named;
use ricochet_kafka::Level;

/// Most (campaign, From domain) pairs a sender's report looks at.
const MAX_CAMPAIGNS: u64 = 20;

/// The newest snapshot per window of `key` at `level` of `esp`.
async fn windows(
    client: &Client,
    level: Level,
    esp: &str,
    key: &str,
) -> crate::error::Result<Vec<Value>> {
    let rows = store::snapshots::newest(client, level, esp, key).await?;
    Ok(rows
        .into_iter()
        .map(|w| json!({"window": w.window, "delivered": w.delivered, "complaints": w.complaints,
                "complaints_by_code": named(w.complaints_by_code), "complaints_by_provider": named(w.complaints_by_provider),
                "weighted_complaints": w.weighted, "rate": w.rate, "wilson_lower": w.lower, "wilson_upper": w.upper,
                "tier": w.tier, "computed_at_ms": w.computed_at}))
        .collect())
}

/// The report of `key` at `level` of `esp`, or `None` when Ricochet has no
/// data for it.
pub async fn report(
    client: &Client,
    policy: &Policy,
    level: Level,
    esp: &str,
    key: &str,
) -> crate::error::Result<Option<Value>> {
    let (windows, standing, since) = tokio::try_join!(
        windows(client, level, esp, key),
        store::standing::tier_in_force(client, level, esp, key),
        store::penalties::tier_since(client, level, esp, key)
    )?;
    if windows.is_empty() && standing.is_none() {
        return Ok(None);
    }
    let tier = standing.as_ref().map_or("ok", |s| s.tier.as_str());
    let below_since = standing.as_ref().and_then(|s| s.below_since);
    let explanation = format!(
        "{level} tier {tier}: {}{}",
        policy.explain(level),
        below_since.map_or(String::new(), |t| format!(" (below since {t})"))
    );
    let mut out = json!({"esp": esp, "level": level, "key": key, "tier": tier,
        "tier_since_ms": since, "windows": windows, "explanation": explanation});
    if level == Level::Sender {
        out["sender"] = json!(key);
        if !has_own_verdict(&out["windows"]) {
            out["judged_by"] = json!(judged_by(client, esp, key).await?);
        }
    }
    Ok(Some(out))
}

/// Whether some window had enough volume for a tier.
fn has_own_verdict(windows: &Value) -> bool {
    windows
        .as_array()
        .into_iter()
        .flatten()
        .any(|w| w["tier"] != "insufficient-data")
}

/// The levels a sender without a verdict of its own is judged by: its
/// ESP, and the campaigns and From domains it carried in the last 30 days
/// (their standings read in one query).
async fn judged_by(client: &Client, esp: &str, sender: &str) -> crate::error::Result<Vec<Value>> {
    let carried = store::senders::carried(client, esp, sender, MAX_CAMPAIGNS).await?;
    // (level, the group's ESP, key): a domain spans ESPs, its ESP is empty.
    let mut groups: BTreeSet<(Level, String, String)> = BTreeSet::new();
    groups.insert((Level::Esp, esp.to_string(), String::new()));
    for (campaign, domain) in carried {
        if !campaign.is_empty() {
            groups.insert((Level::Campaign, esp.to_string(), campaign));
        }
        if !domain.is_empty() {
            groups.insert((Level::Domain, String::new(), domain));
        }
    }
    let keys: Vec<(&str, &str, &str)> = groups
        .iter()
        .map(|(l, e, k)| (l.as_str(), e.as_str(), k.as_str()))
        .collect();
    let tiers = store::standing::group_tiers(client, keys).await?;
    let tier_of = |(level, e, k): &(Level, String, String)| {
        tiers
            .iter()
            .find(|(l, te, tk, _)| l == level.as_str() && te == e && tk == k)
            .map_or("ok", |t| t.3.as_str())
    };
    Ok(groups
        .iter()
        .map(|g| json!({"level": g.0, "key": g.2, "tier": tier_of(g)}))
        .collect())
}
