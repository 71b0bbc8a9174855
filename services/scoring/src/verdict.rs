//! What one run decides for one key at any level: its windows assessed, the
//! standing stepped through the hysteresis, the tier change with its
//! evidence, and when the key must be looked at again.

use std::collections::BTreeMap;

use serde_json::json;

use crate::chain::PenaltyEntry;
use crate::counts::SenderCounts;
use crate::hysteresis::{step, Rule, Standing};
use crate::policy::{assess, Assessment, Policy, Tier, WindowCounts};
use crate::store::snapshots::{Snapshot, SnapshotWriter};
use ricochet_kafka::Level;

/// A campaign that drew a burst of complaints in the last hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Burst {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Campaign id.
    pub campaign: String,
    /// Distinct complaints in the hour.
    pub complaints: u64,
}

/// One window of a key: its counts and what they say.
pub struct Window<'c> {
    /// Window name.
    pub name: &'c str,
    /// The counts.
    pub counts: &'c WindowCounts,
    /// What they say.
    pub assessment: Assessment,
}

/// Every window of `counts` that holds something, assessed.
pub fn assess_windows<'c>(counts: &'c SenderCounts, policy: &'c Policy) -> Vec<Window<'c>> {
    policy
        .windows
        .spans()
        .iter()
        .zip(&counts.windows)
        .filter_map(|(span, c)| {
            c.as_ref().map(|c| Window {
                name: &span.name,
                counts: c,
                assessment: assess(c, policy),
            })
        })
        .collect()
}

/// The most severe tier any window with enough volume supports.
pub fn evidence_tier(assessed: &[Window<'_>]) -> Option<Tier> {
    assessed.iter().filter_map(|w| w.assessment.tier).max()
}

/// Counts by name as a JSON object (evidence, API responses).
pub(crate) fn named<S: AsRef<str>>(counts: Vec<(S, u64)>) -> serde_json::Value {
    counts
        .into_iter()
        .map(|(name, n)| (name.as_ref().to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The evidence of a tier change, as canonical JSON.
pub(crate) fn evidence(
    level: Level,
    windows: &[Window<'_>],
    rule: Option<Rule>,
    policy: &Policy,
    bursts: &[&Burst],
) -> String {
    let per_window: BTreeMap<&str, serde_json::Value> = windows
        .iter()
        .map(|w| {
            let a = &w.assessment;
            (
                w.name,
                json!({
                    "delivered": a.delivered, "complaints": w.counts.complaints(),
                    "complaints_by_code": named(w.counts.by_code()),
                    "complaints_by_provider": named(w.counts.by_provider()),
                    "weighted": a.weighted, "rate": a.rate,
                    "lower": a.lower, "upper": a.upper,
                    "capped_reporter": a.capped_reporter, "capped_provider": a.capped_provider,
                    "tier": a.tier.map_or("insufficient-data", Tier::as_str),
                }),
            )
        })
        .collect();
    json!({
        "level": level,
        "windows": per_window,
        "rule": rule,
        "thresholds": policy.thresholds,
        "min_delivered": policy.min_delivered,
        "campaign_bursts": bursts.iter().map(|b| json!({"campaign": b.campaign, "complaints_last_hour": b.complaints})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Appends a key's snapshots to the open `reputation` insert.
pub async fn write_snapshots(
    writer: &mut SnapshotWriter,
    level: Level,
    esp: &str,
    key: &str,
    assessed: &[Window<'_>],
) -> crate::error::Result<()> {
    for w in assessed {
        let a = &w.assessment;
        let snapshot = Snapshot {
            level,
            window: w.name,
            delivered: a.delivered,
            complaints: w.counts.complaints(),
            by_code: w.counts.by_code(),
            by_provider: w.counts.by_provider(),
            weighted: a.weighted,
            rate: a.rate,
            lower: a.lower,
            upper: a.upper,
            tier: a.tier.map_or("insufficient-data", Tier::as_str),
        };
        writer.write(esp, key, &snapshot).await?;
    }
    Ok(())
}

/// A penalty row with only its chain (`esp`) set.
pub fn blank(esp: &str) -> PenaltyEntry {
    PenaltyEntry {
        esp: esp.into(),
        seq: 0,
        level: Level::Sender.as_str().into(),
        sender: String::new(),
        at_ms: 0,
        from_tier: String::new(),
        to_tier: String::new(),
        rule: String::new(),
        evidence: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// The key a decision is about.
pub struct Subject<'a> {
    /// Level.
    pub level: Level,
    /// ESP (the chain the change goes to).
    pub esp: &'a str,
    /// Key at the level.
    pub key: &'a str,
}

/// What one run decides for one key.
#[derive(Debug)]
pub struct Decision {
    /// The standing after this run.
    pub after: Standing,
    /// The tier change, unsealed, if the tier changed.
    pub change: Option<PenaltyEntry>,
    /// When the key must be rescored although nothing new came for it.
    pub due_ms: Option<i64>,
}

/// Steps a key's standing on its windows' assessments at `now_ms`.
pub fn decide(
    policy: &Policy,
    now_ms: i64,
    subject: Subject<'_>,
    before: Standing,
    assessed: &[Window<'_>],
    bursts: &[&Burst],
    next_expiry_ms: Option<i64>,
) -> Decision {
    let (after, rule) = step(before, evidence_tier(assessed), now_ms / 1000, policy);
    let change = rule.map(|rule| PenaltyEntry {
        level: subject.level.as_str().into(),
        sender: subject.key.into(),
        at_ms: now_ms,
        from_tier: before.tier.as_str().into(),
        to_tier: after.tier.as_str().into(),
        rule: rule.as_str().into(),
        evidence: evidence(subject.level, assessed, Some(rule), policy, bursts),
        ..blank(subject.esp)
    });
    let cool_down_ends = after
        .below_since
        .map(|s| (s + policy.cool_down_days * 86_400) * 1000);
    let due_ms = match (next_expiry_ms, cool_down_ends) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Decision {
        after,
        change,
        due_ms,
    }
}
