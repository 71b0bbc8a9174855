//! One scoring run: read window counts from ClickHouse, assess every sender,
//! move standings through the hysteresis, and write snapshots, standings and
//! sealed penalty rows back.

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chain::{seal, PenaltyEntry};
use crate::hysteresis::{step, Rule, Standing};
use crate::policy::{assess, Assessment, Policy, Tier, WindowCounts};

/// The windows every sender is scored over: name and length in seconds. A
/// sender's evidence is the most severe tier any window with enough volume
/// supports: short windows catch bursts, long ones slow, steady abuse.
pub const WINDOWS: [(&str, i64); 4] = [
    ("1h", 3_600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

type SenderKey = (String, String);

#[derive(Row, Deserialize)]
struct DeliveredAgg {
    esp: String,
    sender: String,
    provider: String,
    delivered: u64,
}

#[derive(Row, Deserialize)]
struct ComplaintAgg {
    esp: String,
    sender: String,
    code: String,
    provider: String,
    tokens: u64,
}

#[derive(Row, Deserialize)]
struct ReporterAgg {
    esp: String,
    sender: String,
    reporter: String,
    tokens: u64,
}

/// A row of `reputation`.
#[derive(Debug, Row, Serialize)]
struct ReputationRow {
    esp: String,
    sender: String,
    window: String,
    computed_at: i64,
    delivered: u64,
    weighted: f64,
    rate: f64,
    lower: f64,
    upper: f64,
    tier: String,
    evidence: String,
}

/// A row of `sender_standing`.
#[derive(Debug, Row, Serialize, Deserialize)]
struct StandingRow {
    esp: String,
    sender: String,
    tier: String,
    below_since: Option<i64>,
    updated_at: i64,
}

#[derive(Row, Deserialize)]
struct ChainHead {
    esp: String,
    seq: u64,
    hash: String,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Senders assessed.
    pub senders: usize,
    /// Tier changes written to `penalties`, in chain order per ESP.
    pub changes: Vec<PenaltyEntry>,
    /// Senders per tier in force after the run.
    pub per_tier: BTreeMap<Tier, usize>,
    /// Campaigns flagged for a burst of complaints in the last hour.
    pub bursts: Vec<Burst>,
}

fn tier_from(s: &str) -> Tier {
    Tier::ALL
        .into_iter()
        .find(|t| t.as_str() == s)
        .unwrap_or(Tier::Ok)
}

async fn window_counts(
    client: &Client,
    policy: &Policy,
    from_ms: i64,
    to_ms: i64,
) -> clickhouse::error::Result<BTreeMap<SenderKey, WindowCounts>> {
    let mut out: BTreeMap<SenderKey, WindowCounts> = BTreeMap::new();
    let delivered: Vec<DeliveredAgg> = client
        .query(
            "SELECT esp, sender, provider, sum(d) AS delivered FROM (
                 SELECT esp, sender, provider, hour, argMaxMerge(delivered) AS d FROM deliveries_hourly
                 WHERE hour >= toDateTime(intDiv(?, 1000)) AND hour < toDateTime(intDiv(?, 1000))
                 GROUP BY esp, sender, provider, hour)
             GROUP BY esp, sender, provider",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all()
        .await?;
    for d in delivered {
        let c = out.entry((d.esp, d.sender)).or_default();
        c.delivered += d.delivered;
        *c.delivered_by_provider.entry(d.provider).or_default() += d.delivered;
    }
    // One token, one vote: each jti counts once, for the provider that reported it first.
    let dedup = "SELECT esp, sender, jti, argMin(code, received_at) AS code, argMin(provider, received_at) AS provider,
                        argMin(reporter, received_at) AS reporter
                 FROM complaints
                 WHERE reported_at >= fromUnixTimestamp64Milli(?) AND reported_at < fromUnixTimestamp64Milli(?)
                 GROUP BY esp, sender, jti";
    let complaints: Vec<ComplaintAgg> = client
        .query(&format!("SELECT esp, sender, toString(code) AS code, toString(provider) AS provider, count() AS tokens FROM ({dedup}) GROUP BY esp, sender, code, provider"))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all()
        .await?;
    for c in complaints {
        *out.entry((c.esp, c.sender))
            .or_default()
            .complaints
            .entry((c.code, c.provider))
            .or_default() += c.tokens;
    }
    let reporters: Vec<ReporterAgg> = client
        .query(&format!("SELECT esp, sender, reporter, count() AS tokens FROM ({dedup}) WHERE reporter != '' GROUP BY esp, sender, reporter HAVING tokens > ?"))
        .bind(from_ms)
        .bind(to_ms)
        .bind(policy.max_per_reporter)
        .fetch_all()
        .await?;
    for r in reporters {
        out.entry((r.esp, r.sender))
            .or_default()
            .heavy_reporters
            .insert(r.reporter, r.tokens);
    }
    Ok(out)
}

#[derive(Row, Deserialize)]
struct BurstAgg {
    esp: String,
    sender: String,
    campaign: String,
    complaints: u64,
}

/// A campaign that drew a burst of complaints in the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Campaigns over the burst thresholds in the hour before `now_ms`.
async fn bursts(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<Vec<Burst>> {
    let rows: Vec<BurstAgg> = client
        .query(
            "SELECT esp, sender, campaign, complaints FROM (
                 SELECT esp, sender, campaign, uniqExact(jti) AS complaints,
                        sum(uniqExact(jti)) OVER (PARTITION BY esp, sender) AS sender_total
                 FROM complaints
                 WHERE reported_at >= fromUnixTimestamp64Milli(?) AND reported_at <= fromUnixTimestamp64Milli(?)
                 GROUP BY esp, sender, campaign)
             WHERE campaign != '' AND complaints >= ? AND complaints >= ? * sender_total
             ORDER BY esp, sender, campaign",
        )
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

fn evidence(
    windows: &BTreeMap<&str, Assessment>,
    rule: Option<Rule>,
    policy: &Policy,
    bursts: &[&Burst],
) -> String {
    let per_window: BTreeMap<&str, serde_json::Value> = windows
        .iter()
        .map(|(w, a)| {
            (
                *w,
                json!({
                    "delivered": a.delivered, "weighted": a.weighted, "rate": a.rate,
                    "lower": a.lower, "upper": a.upper,
                    "capped_reporter": a.capped_reporter, "capped_provider": a.capped_provider,
                    "tier": a.tier.map_or("insufficient-data", Tier::as_str),
                }),
            )
        })
        .collect();
    json!({
        "windows": per_window,
        "rule": rule,
        "thresholds": {"warning": policy.warning, "throttle": policy.throttle, "suspend": policy.suspend, "exclude": policy.exclude},
        "min_delivered": policy.min_delivered,
        "campaign_bursts": bursts.iter().map(|b| json!({"campaign": b.campaign, "complaints_last_hour": b.complaints})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Scores every sender with data at time `now_ms` and writes the results.
pub async fn score_once(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<RunReport> {
    let mut windows = vec![];
    for (name, secs) in WINDOWS {
        windows.push((
            name,
            window_counts(client, policy, now_ms - secs * 1000, now_ms + 1).await?,
        ));
    }
    let standings: Vec<StandingRow> = client
        .query("SELECT esp, sender, toString(tier) AS tier, below_since, updated_at FROM sender_standing FINAL")
        .fetch_all()
        .await?;
    let mut standing: BTreeMap<SenderKey, Standing> = standings
        .into_iter()
        .map(|r| {
            (
                (r.esp, r.sender),
                Standing {
                    tier: tier_from(&r.tier),
                    below_since: r.below_since,
                },
            )
        })
        .collect();
    let heads: Vec<ChainHead> = client
        .query("SELECT toString(esp) AS esp, max(p.seq) AS seq, argMax(p.hash, p.seq) AS hash FROM penalties AS p GROUP BY esp")
        .fetch_all()
        .await?;
    let mut head: BTreeMap<String, PenaltyEntry> = heads
        .into_iter()
        .map(|h| {
            let e = PenaltyEntry {
                esp: h.esp.clone(),
                seq: h.seq,
                hash: h.hash,
                ..blank(&h.esp)
            };
            (h.esp, e)
        })
        .collect();

    let senders: BTreeSet<SenderKey> = windows
        .iter()
        .flat_map(|(_, m)| m.keys().cloned())
        .chain(standing.keys().cloned())
        .collect();
    let mut reputation = vec![];
    let mut standing_rows = vec![];
    let mut report = RunReport {
        senders: senders.len(),
        bursts: bursts(client, policy, now_ms).await?,
        ..Default::default()
    };
    for key in senders {
        let assessed: BTreeMap<&str, Assessment> = windows
            .iter()
            .filter_map(|(w, m)| m.get(&key).map(|c| (*w, assess(c, policy))))
            .collect();
        let evidence_tier = assessed.values().filter_map(|a| a.tier).max();
        let before = standing.get(&key).copied().unwrap_or_default();
        let (after, rule) = step(before, evidence_tier, now_ms / 1000, policy);
        let sender_bursts: Vec<&Burst> = report
            .bursts
            .iter()
            .filter(|b| b.esp == key.0 && b.sender == key.1)
            .collect();
        let ev = evidence(&assessed, rule, policy, &sender_bursts);
        for (w, a) in &assessed {
            reputation.push(ReputationRow {
                esp: key.0.clone(),
                sender: key.1.clone(),
                window: w.to_string(),
                computed_at: now_ms,
                delivered: a.delivered,
                weighted: a.weighted,
                rate: a.rate,
                lower: a.lower,
                upper: a.upper,
                tier: a.tier.map_or("insufficient-data", Tier::as_str).to_string(),
                evidence: String::new(),
            });
        }
        if let Some(rule) = rule {
            let entry = PenaltyEntry {
                sender: key.1.clone(),
                at_ms: now_ms,
                from_tier: before.tier.as_str().into(),
                to_tier: after.tier.as_str().into(),
                rule: serde_json::to_value(rule)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                evidence: ev,
                ..blank(&key.0)
            };
            let sealed = seal(entry, head.get(&key.0));
            head.insert(key.0.clone(), sealed.clone());
            report.changes.push(sealed);
        }
        if after != before || !standing.contains_key(&key) {
            standing_rows.push(StandingRow {
                esp: key.0.clone(),
                sender: key.1.clone(),
                tier: after.tier.as_str().into(),
                below_since: after.below_since,
                updated_at: now_ms,
            });
        }
        *report.per_tier.entry(after.tier).or_default() += 1;
        standing.insert(key, after);
    }
    // Penalties first: a crash after them re-derives the same standing next run
    // from the counts, while a standing written without its penalty row would
    // hide a change from the audit log.
    insert(client, "penalties", &report.changes).await?;
    insert(client, "sender_standing", &standing_rows).await?;
    insert(client, "reputation", &reputation).await?;
    Ok(report)
}

fn blank(esp: &str) -> PenaltyEntry {
    PenaltyEntry {
        esp: esp.into(),
        seq: 0,
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

async fn insert<T>(client: &Client, table: &str, rows: &[T]) -> clickhouse::error::Result<()>
where
    T: for<'a> Row<Value<'a> = T> + clickhouse::RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<T>(table).await?;
    for r in rows {
        insert.write(r).await?;
    }
    insert.end().await
}

/// Reads one ESP's penalty chain in order.
pub async fn penalty_chain(
    client: &Client,
    esp: &str,
) -> clickhouse::error::Result<Vec<PenaltyEntry>> {
    client
        .query("SELECT esp, seq, sender, at_ms, toString(from_tier) AS from_tier, toString(to_tier) AS to_tier, toString(rule) AS rule, evidence, prev_hash, hash FROM penalties WHERE esp = ? ORDER BY seq")
        .bind(esp)
        .fetch_all()
        .await
}
