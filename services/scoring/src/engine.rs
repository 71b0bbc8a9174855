//! Scoring runs: read window counts from ClickHouse, assess the senders in
//! scope, move standings through the hysteresis, and write snapshots,
//! standings and sealed penalty rows back. Runs are incremental: after a full
//! first run, only senders with something new are rescored.

use std::collections::BTreeMap;

// Sender-keyed maps hold up to every sender of a run; SipHash was the
// scorer's largest cost (measured). Keys are ESP-signed sender names, and
// foldhash still seeds each map at random.
use foldhash::{HashMap, HashMapExt, HashSet};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chain::{seal, PenaltyEntry};
use crate::counts::{self, Scope, SenderCounts, SenderKey, WINDOWS};
use crate::hysteresis::{step, Rule, Standing};
use crate::policy::{assess, Assessment, HeavyReporter, Policy, Tier, WindowCounts};
use crate::snapshots::{Snapshot, SnapshotWriter};

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

/// Counts by name as a JSON object (evidence, API responses).
pub(crate) fn named<S: AsRef<str>>(counts: Vec<(S, u64)>) -> serde_json::Value {
    counts
        .into_iter()
        .map(|(name, n)| (name.as_ref().to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn evidence(
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
    insert_keys(client, "scoring_scope", due).await
}

/// Appends senders to a list table (`scoring_scope`, `scoring_suspects`).
async fn insert_keys<'k>(
    client: &Client,
    table: &str,
    keys: impl IntoIterator<Item = &'k SenderKey>,
) -> clickhouse::error::Result<()> {
    let mut keys = keys.into_iter().peekable();
    if keys.peek().is_none() {
        return Ok(());
    }
    let mut insert = client.insert::<ScopeRow>(table).await?;
    for (esp, sender) in keys {
        insert.write(&ScopeRow { esp, sender }).await?;
    }
    insert.end().await
}

/// What a run collects while it streams through the senders.
struct Verdicts<'p> {
    policy: &'p Policy,
    now_ms: i64,
    bursts: HashMap<SenderKey, Vec<Burst>>,
    /// Tier changes, sealed into the chains once the run has them all.
    changes: Vec<PenaltyEntry>,
    standing_rows: Vec<StandingRow>,
    /// Each sender's next due time, applied to memory once the writes succeeded.
    next_due: Vec<(SenderKey, Option<i64>)>,
}

impl Verdicts<'_> {
    /// Steps one sender's standing on its windows' assessments.
    fn judge(
        &mut self,
        memory: &mut Memory,
        key: SenderKey,
        assessed: &[Window<'_>],
        next_expiry_ms: Option<i64>,
    ) {
        let policy = self.policy;
        let before = memory.standing.get(&key).copied().unwrap_or_default();
        let (after, rule) = step(before, evidence_tier(assessed), self.now_ms / 1000, policy);
        if let Some(rule) = rule {
            let bursts: Vec<&Burst> = self.bursts.get(&key).into_iter().flatten().collect();
            self.changes.push(PenaltyEntry {
                sender: key.1.clone(),
                at_ms: self.now_ms,
                from_tier: before.tier.as_str().into(),
                to_tier: after.tier.as_str().into(),
                rule: serde_json::to_value(rule)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                evidence: evidence(assessed, Some(rule), policy, &bursts),
                ..blank(&key.0)
            });
        }
        if after != before {
            self.standing_rows.push(StandingRow {
                esp: key.0.clone(),
                sender: key.1.clone(),
                tier: after.tier.as_str().into(),
                below_since: after.below_since,
                updated_at: self.now_ms,
            });
        }
        let cool_down_ends = after
            .below_since
            .map(|s| (s + policy.cool_down_days * 86_400) * 1000);
        let due = match (next_expiry_ms, cool_down_ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if after == Standing::default() {
            memory.standing.remove(&key);
        } else if after != before {
            memory.standing.insert(key.clone(), after);
        }
        self.next_due.push((key, due));
    }
}

/// The most severe tier any window with enough volume supports.
fn evidence_tier(assessed: &[Window<'_>]) -> Option<Tier> {
    assessed.iter().filter_map(|w| w.assessment.tier).max()
}

/// One window of a sender: its counts and what they say.
struct Window<'c> {
    name: &'static str,
    counts: &'c WindowCounts,
    assessment: Assessment,
}

/// Every window of `counts` that holds something, assessed.
fn assess_windows<'c>(counts: &'c SenderCounts, policy: &Policy) -> Vec<Window<'c>> {
    WINDOWS
        .iter()
        .zip(&counts.windows)
        .filter_map(|((name, _), c)| {
            c.as_ref().map(|c| Window {
                name,
                counts: c,
                assessment: assess(c, policy),
            })
        })
        .collect()
}

/// Appends a sender's snapshots to the open `reputation` insert.
async fn write_snapshots(
    writer: &mut SnapshotWriter,
    key: &SenderKey,
    assessed: &[Window<'_>],
) -> clickhouse::error::Result<()> {
    for w in assessed {
        let a = &w.assessment;
        let snapshot = Snapshot {
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
        writer.write(&key.0, &key.1, &snapshot).await?;
    }
    Ok(())
}

/// One run over `scope`: stream the senders' counts, assess each and write
/// its snapshots as it comes; look up heavy reporters
/// only for the senders where the cap can matter; step standings; seal the
/// changes into the chains in (esp, sender) order; write penalties, then
/// standings.
async fn score(
    client: &Client,
    policy: &Policy,
    memory: &mut Memory,
    scope: Scope,
    now_ms: i64,
) -> clickhouse::error::Result<RunReport> {
    let mut watch = Stopwatch::new();
    // Senders in scope without rows in any window still step (a cool-down
    // may end); those whose data all left the windows keep their standing.
    let mut without_rows: HashSet<SenderKey> = match scope {
        Scope::All => memory.standing.keys().cloned().collect(),
        Scope::Listed => client
            .query("SELECT esp, sender FROM scoring_scope")
            .fetch_all::<(String, String)>()
            .await?
            .into_iter()
            .collect(),
    };
    watch.lap("read scope");
    // The burst query is small: it runs while ClickHouse starts on the counts.
    let (bursts, mut reader) = tokio::try_join!(
        bursts(client, policy, now_ms),
        counts::Reader::open(client, scope, now_ms)
    )?;
    let mut reading = watch.0.elapsed();
    let mut verdicts = Verdicts {
        policy,
        now_ms,
        bursts: HashMap::new(),
        changes: vec![],
        standing_rows: vec![],
        next_due: vec![],
    };
    for b in &bursts {
        verdicts
            .bursts
            .entry((b.esp.clone(), b.sender.clone()))
            .or_default()
            .push(b.clone());
    }
    let mut reputation = SnapshotWriter::new(client, now_ms);
    let mut senders = 0;
    // The per-reporter cap only ever lowers a rate: where the counts without
    // it support no tier, they support none with it either, and the cap is
    // not looked up. The others are judged once their reporters are counted.
    let mut suspects: Vec<(SenderKey, SenderCounts)> = vec![];
    loop {
        let started = std::time::Instant::now();
        let next = reader.next().await?;
        reading += started.elapsed();
        let Some((key, c)) = next else { break };
        senders += 1;
        without_rows.remove(&key);
        let assessed = assess_windows(&c, policy);
        if evidence_tier(&assessed).is_some_and(|t| t > Tier::Ok) {
            suspects.push((key, c));
            continue;
        }
        write_snapshots(&mut reputation, &key, &assessed).await?;
        verdicts.judge(memory, key, &assessed, c.next_expiry_ms);
    }
    let streamed = watch.0.elapsed().as_secs_f64();
    watch
        .1
        .push(("read counts and bursts", reading.as_secs_f64()));
    watch.1.push((
        "assess and stream snapshots",
        streamed - reading.as_secs_f64(),
    ));
    watch.0 = std::time::Instant::now();
    let mut heavy = suspects_heavy_reporters(client, policy, &suspects, now_ms).await?;
    for (key, mut c) in suspects {
        for (i, reporter) in heavy.remove(&key).unwrap_or_default() {
            if let Some(w) = c.windows[i].as_mut() {
                w.heavy_reporters.push(reporter);
            }
        }
        let assessed = assess_windows(&c, policy);
        write_snapshots(&mut reputation, &key, &assessed).await?;
        verdicts.judge(memory, key, &assessed, c.next_expiry_ms);
    }
    // No rows, no evidence: these keep their tier, but a cool-down still
    // makes them due.
    senders += without_rows.len();
    for key in without_rows {
        verdicts.judge(memory, key, &[], None);
    }
    watch.lap("heavy reporters and suspects");
    reputation.end().await?;
    // Sealed in (esp, sender) order, so the chains do not depend on which
    // senders were suspects or on hashing.
    verdicts
        .changes
        .sort_unstable_by(|a, b| (&a.esp, &a.sender).cmp(&(&b.esp, &b.sender)));
    let mut changes = Vec::with_capacity(verdicts.changes.len());
    for entry in verdicts.changes {
        let esp = entry.esp.clone();
        let sealed = seal(entry, memory.head.get(&esp));
        memory.head.insert(esp, sealed.clone());
        changes.push(sealed);
    }
    // Penalties first: a crash after them re-derives the same standing next run
    // from the counts, while a standing written without its penalty row would
    // hide a change from the audit log.
    insert(client, "penalties", &changes).await?;
    insert(client, "sender_standing", &verdicts.standing_rows).await?;
    watch.lap("write");
    for (key, due) in verdicts.next_due {
        match due {
            Some(at) => memory.due_ms.insert(key, at),
            None => memory.due_ms.remove(&key),
        };
    }
    let mut report = RunReport {
        senders,
        changes,
        bursts,
        ..Default::default()
    };
    report.per_tier = per_tier(memory);
    report.phases = watch.1;
    Ok(report)
}

/// Lists `senders` in `scoring_suspects`, in place of what it held.
async fn list_suspects<'k>(
    client: &Client,
    senders: impl IntoIterator<Item = &'k SenderKey>,
) -> clickhouse::error::Result<()> {
    client
        .query("TRUNCATE TABLE scoring_suspects")
        .execute()
        .await?;
    insert_keys(client, "scoring_suspects", senders).await
}

/// The heavy reporters of this run's suspects. Their senders are listed
/// twice in `scoring_suspects`: all suspects for a cheap pass over their
/// complaints, then only those with a reporter that may pass the cap, for
/// the exact count. Lists go through that table, not the query text, which
/// ClickHouse bounds in size.
async fn suspects_heavy_reporters(
    client: &Client,
    policy: &Policy,
    suspects: &[(SenderKey, SenderCounts)],
    now_ms: i64,
) -> clickhouse::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    if suspects.is_empty() {
        return Ok(HashMap::new());
    }
    list_suspects(client, suspects.iter().map(|(key, _)| key)).await?;
    let candidates = counts::reporter_cap_candidates(client, policy, now_ms).await?;
    if candidates.is_empty() {
        // The usual case: nobody reported a suspect more than the cap allows.
        return Ok(HashMap::new());
    }
    list_suspects(client, &candidates).await?;
    counts::heavy_reporters(client, policy, now_ms).await
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
