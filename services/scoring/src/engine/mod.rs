//! Scoring runs: read window counts from ClickHouse, assess the senders in
//! scope, move standings through the hysteresis, and write snapshots,
//! standings and sealed penalty rows back. Runs are incremental: after a full
//! first run, only senders with something new are rescored.

use std::collections::BTreeMap;

// Sender-keyed maps hold up to every sender of a run; SipHash was the
// scorer's largest cost (measured). Keys are ESP-signed sender names, and
// foldhash still seeds each map at random.
use foldhash::{HashMap, HashMapExt, HashSet};

use clickhouse::Client;

use crate::books::{Contributions, GroupKey};
use crate::chain::{seal, PenaltyEntry};
use crate::counts::SenderKey;
use crate::groups::{GroupMemory, GroupRun};
use crate::hysteresis::Standing;
use crate::partition::Partition;
use crate::policy::{Policy, Tier};
use crate::store::bursts::bursts;
use crate::store::reader::Scope;
use crate::store::scope::fill_scope;
use crate::store::snapshots::SnapshotWriter;
use crate::store::standing::StandingRow;
use crate::store::{self, insert};
use crate::verdict::blank;
pub use crate::verdict::Burst;
use ricochet_kafka::Level;

mod partitioned;
mod senders;
use senders::{bursts_by_sender, SenderPass, Verdicts};

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Senders assessed.
    pub senders: usize,
    /// Tier changes written to `penalties`, in chain order per ESP.
    pub changes: Vec<PenaltyEntry>,
    /// Senders per tier in force after the run.
    pub per_tier: BTreeMap<Tier, usize>,
    /// ESPs and campaigns per level and tier in force after the run.
    pub group_tiers: BTreeMap<(Level, Tier), usize>,
    /// ESPs and campaigns assessed, per level.
    pub groups: BTreeMap<Level, usize>,
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
    /// Every sender with data in some window or a cool-down running.
    senders: HashMap<SenderKey, Known>,
    /// Standings, due times and books of the levels above the sender.
    groups: GroupMemory,
}

/// What the scorer keeps of one sender between runs.
struct Known {
    /// When it must be rescored although no new row came for it.
    due_ms: i64,
    /// What its slices add to the books.
    contributions: Contributions,
}

/// Scores senders on demand: the first run and every `full_every` run cover
/// every sender; the others only the senders that are dirty (new rows since
/// the previous run, a row leaving a window, a cool-down ending).
pub struct Scorer {
    client: Client,
    policy: Policy,
    part: Partition,
    /// Whether this instance's work lists exist.
    lists_ready: bool,
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
            part: Partition::WHOLE,
            lists_ready: true,
            memory: None,
            since_full: 0,
            full_every: 0,
            load_margin_ms: LOAD_MARGIN_MS,
        }
    }

    /// Scores only the ESPs of `part` (and the domain level if it owns
    /// it), with its own work lists, created by the first run if missing.
    pub fn partitioned(mut self, part: Partition) -> Self {
        self.part = part;
        self.lists_ready = !part.is_split();
        self
    }

    /// The share of the ESPs this scorer scores.
    pub fn partition(&self) -> Partition {
        self.part
    }

    /// Puts `policy` in force from the next run, which is a full one: every
    /// key is judged again under the new numbers.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.memory = None;
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Every standing in force other than `ok`, at every level (empty
    /// before the first run and after a failed one).
    pub fn standings(&self) -> Vec<(crate::listed::ListedKey, Tier)> {
        let Some(memory) = self.memory.as_ref() else {
            return vec![];
        };
        let senders = memory
            .standing
            .iter()
            .map(|((esp, sender), s)| ((Level::Sender, esp.clone(), sender.clone()), s.tier));
        let groups = memory
            .groups
            .standing
            .iter()
            .map(|(key, s)| (key.clone(), s.tier));
        senders.chain(groups).collect()
    }

    /// Scores at time `now_ms` and writes the results.
    pub async fn run(&mut self, now_ms: i64) -> crate::error::Result<RunReport> {
        let full = self.memory.is_none()
            || (self.full_every > 0 && self.since_full + 1 >= self.full_every);
        if !self.lists_ready {
            for sql in self.part.create_lists() {
                self.client.query(&sql).execute().await?;
            }
            self.lists_ready = true;
        }
        let mark = store::scope::server_now_ms(&self.client).await?;
        let mut scope_secs = 0.0;
        // Partitioned: the domains' shares written since then are rescored.
        let mut shares_since = None;
        let scope = if full {
            self.memory = Some(load_memory(&self.client, self.part, mark).await?);
            self.since_full = 0;
            Scope::All(self.part)
        } else {
            self.since_full += 1;
            let memory = self.memory.as_ref().expect("checked above");
            let started = std::time::Instant::now();
            // Collected first: a lazy filter held across the await would
            // make the run's future not `Send` (a scorer per spawned task).
            let due: Vec<&SenderKey> = (memory.senders.iter())
                .filter(|(_, k)| k.due_ms <= now_ms)
                .map(|(k, _)| k)
                .collect();
            let since = memory.loaded_mark_ms - self.load_margin_ms;
            shares_since = Some(since);
            fill_scope(&self.client, self.part, since, due).await?;
            scope_secs = started.elapsed().as_secs_f64();
            Scope::Listed(self.part)
        };
        let memory = self.memory.as_mut().expect("set above");
        let result = score(
            &self.client,
            &self.policy,
            memory,
            (scope, shares_since),
            now_ms,
        )
        .await;
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
) -> crate::error::Result<RunReport> {
    Scorer::new(client.clone(), policy.clone())
        .run(now_ms)
        .await
}

async fn load_memory(client: &Client, part: Partition, mark: i64) -> crate::error::Result<Memory> {
    let head = store::penalties::chain_heads(client, part)
        .await?
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
        standing: store::standing::sender_standings(client, part).await?,
        head,
        senders: HashMap::new(),
        groups: GroupMemory::load(client, part).await?,
    })
}

/// Applies the senders' due times and contributions to memory; returns
/// the groups whose books changed (none listed in a full run, which
/// rescores every group).
fn remember_senders(
    memory: &mut Memory,
    next: Vec<(SenderKey, Option<i64>, Contributions)>,
    full: bool,
) -> HashSet<GroupKey> {
    let mut changed: HashSet<GroupKey> = HashSet::default();
    for (key, due, contributions) in next {
        let old = memory.senders.get(&key).map(|k| &*k.contributions);
        if old != Some(&*contributions) {
            let list = (!full).then_some(&mut changed);
            let old = old.unwrap_or_default();
            memory
                .groups
                .books
                .replace(&key.0, old, &contributions, list);
        }
        match due {
            Some(due_ms) => {
                let known = Known {
                    due_ms,
                    contributions,
                };
                memory.senders.insert(key, known);
            }
            None => {
                memory.senders.remove(&key);
            }
        }
    }
    changed
}

/// One run over `scope`: stream the senders' counts, assess each and write
/// its snapshots as it comes; look up heavy reporters only for the senders
/// where the cap can matter; step standings; score the ESP and campaign
/// levels; seal the changes into the chains; write penalties, then
/// standings.
async fn score(
    client: &Client,
    policy: &Policy,
    memory: &mut Memory,
    (scope, shares_since): (Scope, Option<i64>),
    now_ms: i64,
) -> crate::error::Result<RunReport> {
    let mut watch = Stopwatch::new();
    let without_rows = scope_without_rows(client, memory, scope).await?;
    watch.lap("read scope");
    // The burst query is small: it runs while ClickHouse starts on the counts.
    let (bursts, reader) = tokio::try_join!(
        bursts(client, scope.partition(), policy, now_ms),
        crate::store::reader::Reader::open(client, scope, &policy.windows, now_ms)
    )?;
    let sender_policy = policy.for_level(Level::Sender);
    let mut verdicts = Verdicts {
        policy: &sender_policy,
        now_ms,
        bursts: bursts_by_sender(&bursts),
        changes: vec![],
        standing_rows: vec![],
        next: vec![],
    };
    let mut reputation = SnapshotWriter::new(client, now_ms);
    let pass = SenderPass {
        client,
        part: scope.partition(),
        policy: &sender_policy,
        now_ms,
    };
    let senders = pass
        .run(
            memory,
            reader,
            without_rows,
            &mut verdicts,
            &mut reputation,
            &mut watch,
        )
        .await?;
    // The senders' snapshots are complete: their insert ends before the
    // group levels read (an insert left waiting that long times out).
    reputation.end().await?;
    let full = scope.is_all();
    let changed = remember_senders(memory, std::mem::take(&mut verdicts.next), full);
    let part = scope.partition();
    let mut domains = vec![];
    if part.is_split() {
        partitioned::publish_shares(client, part, &memory.groups, &changed, full).await?;
        if part.owns_domains() {
            domains =
                partitioned::domain_counts(client, &memory.groups, shares_since, now_ms).await?;
        }
    }
    let run = (scope, now_ms);
    let mut groups =
        score_groups(client, policy, memory, (changed, domains), run, &mut watch).await?;
    if part.is_split() {
        let told =
            partitioned::tell_own_esps(client, &mut memory.groups, &groups.decisions, now_ms);
        groups.changes.extend(told.await?);
    }
    let changes = seal_changes(
        memory,
        verdicts.changes,
        std::mem::take(&mut groups.changes),
    );
    crate::store::domain_books::record(client, &groups.decisions).await?;
    write_run(
        client,
        &changes,
        &verdicts.standing_rows,
        &groups.standing_rows,
    )
    .await?;
    watch.lap("write");
    Ok(RunReport {
        senders,
        changes,
        bursts,
        per_tier: per_tier(memory),
        group_tiers: crate::groups::per_tier(&memory.groups),
        groups: groups.assessed,
        full: false,
        phases: watch.1,
    })
}

/// The senders in scope, all to be stepped even without rows in any window
/// (a cool-down may end); those whose data all left the windows keep their
/// standing.
async fn scope_without_rows(
    client: &Client,
    memory: &Memory,
    scope: Scope,
) -> crate::error::Result<HashSet<SenderKey>> {
    Ok(match scope {
        Scope::All(_) => memory.standing.keys().cloned().collect(),
        Scope::Listed(part) => store::scope::listed(client, part)
            .await?
            .into_iter()
            .collect(),
    })
}

/// Scores the ESP, campaign and domain levels from the books, with their
/// snapshots, and times them.
async fn score_groups(
    client: &Client,
    policy: &Policy,
    memory: &mut Memory,
    (changed, domains): (
        HashSet<GroupKey>,
        Vec<(GroupKey, crate::counts::SenderCounts)>,
    ),
    (scope, now_ms): (Scope, i64),
    watch: &mut Stopwatch,
) -> crate::error::Result<crate::groups::GroupVerdicts> {
    let mut reputation = SnapshotWriter::new(client, now_ms);
    let group_run = GroupRun {
        client,
        part: scope.partition(),
        policy,
        now_ms,
        full: scope.is_all(),
    };
    let groups = group_run
        .score(&mut memory.groups, changed, domains, &mut reputation)
        .await?;
    watch.lap("ESP, campaign and domain levels");
    watch
        .1
        .push(("of which their reporter lookups", groups.lookup_secs));
    reputation.end().await?;
    Ok(groups)
}

/// Writes a run's outcome. Penalties first: a crash after them re-derives
/// the same standing next run from the counts, while a standing written
/// without its penalty row would hide a change from the audit log.
async fn write_run(
    client: &Client,
    changes: &[PenaltyEntry],
    senders: &[StandingRow],
    groups: &[store::standing::GroupStandingRow],
) -> crate::error::Result<()> {
    insert(client, "penalties", changes).await?;
    insert(client, "sender_standing", senders).await?;
    insert(client, "group_standing", groups).await
}

/// Seals the run's tier changes into the chains in (esp, level, key)
/// order, so the chains depend neither on which senders were suspects nor
/// on hashing.
fn seal_changes(
    memory: &mut Memory,
    senders: Vec<PenaltyEntry>,
    groups: Vec<(Level, PenaltyEntry)>,
) -> Vec<PenaltyEntry> {
    let mut unsealed: Vec<(Level, PenaltyEntry)> = senders
        .into_iter()
        .map(|e| (Level::Sender, e))
        .chain(groups)
        .collect();
    unsealed
        .sort_unstable_by(|(la, a), (lb, b)| (&a.esp, la, &a.sender).cmp(&(&b.esp, lb, &b.sender)));
    let mut changes = Vec::with_capacity(unsealed.len());
    for (_, entry) in unsealed {
        let esp = entry.esp.clone();
        let sealed = seal(entry, memory.head.get(&esp));
        memory.head.insert(esp, sealed.clone());
        changes.push(sealed);
    }
    changes
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
        .senders
        .keys()
        .filter(|k| !memory.standing.contains_key(*k))
        .count();
    *out.entry(Tier::Ok).or_default() += ok;
    out
}
