//! Scoring runs: read window counts from ClickHouse, assess the senders in
//! scope, move standings through the hysteresis, and write snapshots,
//! standings and sealed penalty rows back. Runs are incremental: after a full
//! first run, only senders with something new are rescored.

use std::collections::{BTreeMap, HashMap, HashSet};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chain::{seal, PenaltyEntry};
use crate::counts::{self, Scope, SenderCounts, SenderKey, WINDOWS};
use crate::hysteresis::{step, Rule, Standing};
use crate::policy::{assess, Assessment, Policy, Tier};

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
    /// Whether the run covered every sender (else only the dirty ones).
    pub full: bool,
    /// Seconds spent per phase, in order (for logs and benchmarks).
    pub phases: Vec<(&'static str, f64)>,
}

/// Times consecutive phases of a run.
struct Stopwatch(std::time::Instant, Vec<(&'static str, f64)>);

impl Stopwatch {
    fn new() -> Self {
        Stopwatch(std::time::Instant::now(), vec![])
    }

    fn lap(&mut self, phase: &'static str) {
        self.1.push((phase, self.0.elapsed().as_secs_f64()));
        self.0 = std::time::Instant::now();
    }
}

fn tier_from(s: &str) -> Tier {
    Tier::ALL
        .into_iter()
        .find(|t| t.as_str() == s)
        .unwrap_or(Tier::Ok)
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

/// Default of [`Scorer::load_margin_ms`].
pub const LOAD_MARGIN_MS: i64 = 30_000;

/// What the scorer remembers between runs. It is the only writer of
/// standings and penalties in its database, so its memory stays true; a new
/// scorer starts with a full run that rebuilds it.
struct Memory {
    /// Server clock (ms) when the previous run started reading.
    loaded_mark_ms: i64,
    /// Tier in force, for senders not in the default standing.
    standing: HashMap<SenderKey, Standing>,
    /// Newest penalty row per ESP (the chain head).
    head: BTreeMap<String, PenaltyEntry>,
    /// When each sender must be rescored although no new row came for it.
    due_ms: HashMap<SenderKey, i64>,
}

/// Scores senders on demand: the first run and every `full_every` run cover
/// every sender; the others only the senders that are dirty (new rows since
/// the previous run, a row leaving a window, a cool-down ending).
pub struct Scorer {
    client: Client,
    policy: Policy,
    memory: Option<Memory>,
    /// Runs since the last full one.
    since_full: u32,
    /// Every how many runs a full one is made anyway (0: never after the first).
    pub full_every: u32,
    /// Rows loaded this long before the previous run started still make their
    /// sender dirty: an insert that began before that run may have become
    /// visible only after it read. Rescoring a sender twice changes nothing.
    pub load_margin_ms: i64,
}

impl Scorer {
    /// A scorer with nothing remembered: its first run is a full one.
    pub fn new(client: Client, policy: Policy) -> Self {
        Scorer {
            client,
            policy,
            memory: None,
            since_full: 0,
            full_every: 0,
            load_margin_ms: LOAD_MARGIN_MS,
        }
    }

    /// Scores at time `now_ms` and writes the results.
    pub async fn run(&mut self, now_ms: i64) -> clickhouse::error::Result<RunReport> {
        let full = self.memory.is_none()
            || (self.full_every > 0 && self.since_full + 1 >= self.full_every);
        let mark: i64 = self
            .client
            .query("SELECT toUnixTimestamp64Milli(now64(3))")
            .fetch_one()
            .await?;
        let mut scope_secs = 0.0;
        let scope = if full {
            self.memory = Some(load_memory(&self.client, mark).await?);
            self.since_full = 0;
            Scope::All
        } else {
            self.since_full += 1;
            let memory = self.memory.as_ref().expect("checked above");
            let started = std::time::Instant::now();
            fill_scope(&self.client, memory, now_ms, self.load_margin_ms).await?;
            scope_secs = started.elapsed().as_secs_f64();
            Scope::Listed
        };
        let memory = self.memory.as_mut().expect("set above");
        let result = score(&self.client, &self.policy, memory, scope, now_ms).await;
        match result {
            Ok(mut report) => {
                memory.loaded_mark_ms = mark;
                report.full = full;
                if !full {
                    report.phases.insert(0, ("find dirty senders", scope_secs));
                }
                Ok(report)
            }
            Err(e) => {
                // Whatever was half-written, the next run starts over from the database.
                self.memory = None;
                Err(e)
            }
        }
    }
}

/// Scores every sender with data at time `now_ms` and writes the results
/// (a full run of a new [`Scorer`]).
pub async fn score_once(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<RunReport> {
    Scorer::new(client.clone(), policy.clone())
        .run(now_ms)
        .await
}

async fn load_memory(client: &Client, mark: i64) -> clickhouse::error::Result<Memory> {
    let standings: Vec<StandingRow> = client
        .query("SELECT esp, sender, toString(tier) AS tier, below_since, updated_at FROM sender_standing FINAL")
        .fetch_all()
        .await?;
    // Memory keeps only standings that differ from the default, as `score` does.
    let standing = standings
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
        .filter(|(_, s)| *s != Standing::default())
        .collect();
    let heads: Vec<ChainHead> = client
        .query("SELECT toString(esp) AS esp, max(p.seq) AS seq, argMax(p.hash, p.seq) AS hash FROM penalties AS p GROUP BY esp")
        .fetch_all()
        .await?;
    let head = heads
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
    Ok(Memory {
        loaded_mark_ms: mark,
        standing,
        head,
        due_ms: HashMap::new(),
    })
}

#[derive(Row, Serialize)]
struct ScopeRow<'a> {
    esp: &'a str,
    sender: &'a str,
}

/// Lists this run's dirty senders in `scoring_scope`.
async fn fill_scope(
    client: &Client,
    memory: &Memory,
    now_ms: i64,
    margin_ms: i64,
) -> clickhouse::error::Result<()> {
    client
        .query("TRUNCATE TABLE scoring_scope")
        .execute()
        .await?;
    let since = memory.loaded_mark_ms - margin_ms;
    client
        .query(
            "INSERT INTO scoring_scope
             SELECT DISTINCT esp, sender FROM complaints WHERE loaded_at >= fromUnixTimestamp64Milli(?)
             UNION DISTINCT
             SELECT DISTINCT esp, sender FROM deliveries WHERE loaded_at >= fromUnixTimestamp64Milli(?)",
        )
        .bind(since)
        .bind(since)
        .execute()
        .await?;
    let due: Vec<&SenderKey> = memory
        .due_ms
        .iter()
        .filter(|(_, at)| **at <= now_ms)
        .map(|(k, _)| k)
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<ScopeRow>("scoring_scope").await?;
    for (esp, sender) in due {
        insert.write(&ScopeRow { esp, sender }).await?;
    }
    insert.end().await
}

/// One run over `scope`: assess, step standings, seal changes, write.
async fn score(
    client: &Client,
    policy: &Policy,
    memory: &mut Memory,
    scope: Scope,
    now_ms: i64,
) -> clickhouse::error::Result<RunReport> {
    let mut watch = Stopwatch::new();
    let counts = counts::read(client, policy, scope, now_ms).await?;
    watch.lap("read counts");
    let mut senders: Vec<(SenderKey, SenderCounts)> = counts.into_iter().collect();
    // Senders in scope without rows in any window still step (a cool-down
    // may end); those whose data all left the windows keep their standing.
    let without_rows: Vec<SenderKey> = match scope {
        Scope::All => memory.standing.keys().cloned().collect(),
        Scope::Listed => {
            client
                .query("SELECT esp, sender FROM scoring_scope")
                .fetch_all::<(String, String)>()
                .await?
        }
    };
    let with_rows: HashSet<&SenderKey> = senders.iter().map(|(k, _)| k).collect();
    let extra: Vec<SenderKey> = without_rows
        .into_iter()
        .filter(|k| !with_rows.contains(k))
        .collect();
    senders.extend(extra.into_iter().map(|k| (k, SenderCounts::default())));
    // Sorted, so the penalty chain order does not depend on hashing.
    senders.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut reputation = vec![];
    let mut standing_rows = vec![];
    let mut report = RunReport {
        senders: senders.len(),
        bursts: bursts(client, policy, now_ms).await?,
        ..Default::default()
    };
    watch.lap("read bursts");
    let mut next_due: Vec<(SenderKey, Option<i64>)> = Vec::with_capacity(senders.len());
    for (key, c) in senders {
        let assessed: BTreeMap<&str, Assessment> = WINDOWS
            .iter()
            .zip(&c.windows)
            .filter_map(|((w, _), counts)| counts.as_ref().map(|c| (*w, assess(c, policy))))
            .collect();
        let evidence_tier = assessed.values().filter_map(|a| a.tier).max();
        let before = memory.standing.get(&key).copied().unwrap_or_default();
        let (after, rule) = step(before, evidence_tier, now_ms / 1000, policy);
        let sender_bursts: Vec<&Burst> = report
            .bursts
            .iter()
            .filter(|b| b.esp == key.0 && b.sender == key.1)
            .collect();
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
                evidence: evidence(&assessed, Some(rule), policy, &sender_bursts),
                ..blank(&key.0)
            };
            let sealed = seal(entry, memory.head.get(&key.0));
            memory.head.insert(key.0.clone(), sealed.clone());
            report.changes.push(sealed);
        }
        if after != before {
            standing_rows.push(StandingRow {
                esp: key.0.clone(),
                sender: key.1.clone(),
                tier: after.tier.as_str().into(),
                below_since: after.below_since,
                updated_at: now_ms,
            });
        }
        let cool_down_ends = after
            .below_since
            .map(|s| (s + policy.cool_down_days * 86_400) * 1000);
        let due = match (c.next_expiry_ms, cool_down_ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if after == Standing::default() {
            memory.standing.remove(&key);
        } else {
            memory.standing.insert(key.clone(), after);
        }
        next_due.push((key, due));
    }
    watch.lap("assess");
    // Penalties first: a crash after them re-derives the same standing next run
    // from the counts, while a standing written without its penalty row would
    // hide a change from the audit log.
    insert(client, "penalties", &report.changes).await?;
    insert(client, "sender_standing", &standing_rows).await?;
    insert(client, "reputation", &reputation).await?;
    watch.lap("write");
    for (key, due) in next_due {
        match due {
            Some(at) => memory.due_ms.insert(key, at),
            None => memory.due_ms.remove(&key),
        };
    }
    report.per_tier = per_tier(memory);
    report.phases = watch.1;
    Ok(report)
}

/// Senders per tier in force: standings hold every sender not `ok`; the
/// senders with data in some window (all of which have a due time) and no
/// standing are `ok`.
fn per_tier(memory: &Memory) -> BTreeMap<Tier, usize> {
    let mut out: BTreeMap<Tier, usize> = BTreeMap::new();
    for s in memory.standing.values() {
        *out.entry(s.tier).or_default() += 1;
    }
    let ok = memory
        .due_ms
        .keys()
        .filter(|k| !memory.standing.contains_key(*k))
        .count();
    *out.entry(Tier::Ok).or_default() += ok;
    out
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
