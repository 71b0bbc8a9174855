//! Scoring at the levels above the sender: the ESP's whole book, each
//! campaign across its sender ids and each From domain across ESPs, with
//! the sender level's rules (weights,
//! caps, Wilson bounds, minimum volume, windows, tiers, hysteresis), evidence
//! and chain. A spammer that spreads its mail over fresh sender ids, each
//! under the minimum volume, still adds up at these levels. Their counts
//! come from the [`Books`], kept up to date by the sender level's read.

use std::collections::BTreeMap;

use clickhouse::Client;
use foldhash::{HashMap, HashSet};

pub use crate::books::GroupKey;
use crate::books::{Books, Names};
use crate::chain::PenaltyEntry;
use crate::counts::SenderCounts;
use crate::domains::Told;
use crate::hysteresis::Standing;
use crate::partition::Partition;
use crate::policy::{HeavyReporter, Policy, Tier};
use crate::store;
use crate::store::domain_books::DecisionRow;
use crate::store::group_reporters;
use crate::store::snapshots::SnapshotWriter;
use crate::store::standing::GroupStandingRow;
use crate::verdict::{
    assess_windows, decide, evidence, evidence_tier, write_snapshots, Decision, Subject, Window,
};
use ricochet_kafka::Level;

/// What the scorer remembers of the groups between runs.
#[derive(Default)]
pub struct GroupMemory {
    /// Tier in force, for groups not in the default standing.
    pub standing: HashMap<GroupKey, Standing>,
    /// When each group must be rescored although nothing new came for it.
    pub due_ms: HashMap<GroupKey, i64>,
    /// Each group's counts.
    pub books: Books,
    /// Code and provider ids of the books.
    pub names: Names,
    /// What each ESP was last told of each domain.
    pub told: Told,
    /// Per suspect group, its reporters over the cap as the last lookup
    /// found them (see [`GroupRun::add_heavy_reporters`]).
    pub heavy: HashMap<GroupKey, Vec<(usize, HeavyReporter)>>,
    /// Partitioned, the owner of the domain level: the domains with a
    /// stored decision (the others get one when first judged above `ok`).
    pub decided: HashSet<String>,
}

/// What the group levels of one run decided.
#[derive(Default)]
pub struct GroupVerdicts {
    /// Tier changes, unsealed, with their level.
    pub changes: Vec<(Level, PenaltyEntry)>,
    /// Standings that changed.
    pub standing_rows: Vec<GroupStandingRow>,
    /// Partitioned scoring: the domain level's tier changes, for every
    /// instance to tell its ESPs (instead of the changes above).
    pub decisions: Vec<DecisionRow>,
    /// Groups assessed, per level.
    pub assessed: BTreeMap<Level, usize>,
    /// Seconds the reporter lookup took (part of the run's group phase).
    pub lookup_secs: f64,
}

impl GroupMemory {
    /// Reads the partition's group standings in force (a full run's start).
    pub async fn load(client: &Client, part: Partition) -> crate::error::Result<GroupMemory> {
        let decided = match part.is_split() && part.owns_domains() {
            true => (store::domain_books::decisions(client).await?.into_iter())
                .map(|d| d.domain)
                .collect(),
            false => HashSet::default(),
        };
        Ok(GroupMemory {
            standing: store::standing::group_standings(client, part).await?,
            told: Told::load(client, part).await?,
            decided,
            ..Default::default()
        })
    }

    /// Groups due at `now_ms`.
    fn due(&self, now_ms: i64) -> impl Iterator<Item = &GroupKey> {
        self.due_ms
            .iter()
            .filter(move |(_, at)| **at <= now_ms)
            .map(|(k, _)| k)
    }
}

/// What a group run needs besides the memory.
pub struct GroupRun<'a> {
    /// ClickHouse.
    pub client: &'a Client,
    /// The ESPs (and perhaps the domain level) this instance scores.
    pub part: Partition,
    /// The policy in force.
    pub policy: &'a Policy,
    /// Run time.
    pub now_ms: i64,
    /// Whether every group is rescored (else the dirty ones).
    pub full: bool,
}

impl GroupRun<'_> {
    /// Scores the groups whose books changed (`changed`), those due and,
    /// in a full run, every group, and writes their snapshots. A
    /// partitioned instance's books hold only its share of each domain:
    /// the domains it scores come with their totals in `domains` instead.
    pub async fn score(
        &self,
        memory: &mut GroupMemory,
        changed: HashSet<GroupKey>,
        domains: Vec<(GroupKey, SenderCounts)>,
        snapshots: &mut SnapshotWriter,
    ) -> crate::error::Result<GroupVerdicts> {
        let mut keys = changed;
        keys.extend(memory.due(self.now_ms).cloned());
        if self.full {
            keys.extend(memory.books.keys());
            // Groups without rows still step (a cool-down may end).
            keys.extend(memory.standing.keys().cloned());
        }
        if self.part.is_split() {
            keys.retain(|k| k.0 != Level::Domain);
        }
        let mut groups: HashMap<GroupKey, SenderCounts> = keys
            .into_iter()
            .map(|k| {
                let counts = memory.books.counts(&k, &memory.names);
                (k, counts)
            })
            .collect();
        groups.extend(domains);
        let started = std::time::Instant::now();
        self.add_heavy_reporters(memory, &mut groups).await?;
        let mut out = GroupVerdicts {
            lookup_secs: started.elapsed().as_secs_f64(),
            ..GroupVerdicts::default()
        };
        let mut keys: Vec<GroupKey> = groups.keys().cloned().collect();
        keys.sort_unstable();
        for key in keys {
            let carriers = match key.0 {
                Level::Domain if !self.part.is_split() => memory.books.carriers(&key.2),
                _ => Default::default(),
            };
            self.judge(memory, &key, &groups[&key], &carriers, snapshots, &mut out)
                .await?;
            *out.assessed.entry(key.0).or_default() += 1;
        }
        Ok(out)
    }

    /// Adds the reporters over the cap to the groups whose counts without
    /// the cap reach a tier (the cap only ever lowers a rate). A full run
    /// looks them up for every such group; an incremental run only for
    /// groups that just became suspects, and reuses what the last lookup
    /// found for the others: a lookup scans the complaints of every suspect
    /// group (seconds on the bench), and a group that stays a suspect keeps
    /// its heavy reporters until the next full run. The ESP level is looked
    /// up in full runs only (a whole book).
    async fn add_heavy_reporters(
        &self,
        memory: &mut GroupMemory,
        groups: &mut HashMap<GroupKey, SenderCounts>,
    ) -> crate::error::Result<()> {
        let (suspects, cleared): (Vec<GroupKey>, Vec<GroupKey>) =
            groups.keys().cloned().partition(|k| {
                let policy = self.policy.for_level(k.0);
                let assessed = assess_windows(&groups[k], &policy);
                evidence_tier(&assessed).is_some_and(|t| t > Tier::Ok)
            });
        if self.full {
            memory.heavy.clear();
        }
        for k in cleared {
            memory.heavy.remove(&k);
        }
        let lookup: Vec<GroupKey> = suspects
            .into_iter()
            .filter(|k| self.full || (k.0 != Level::Esp && !memory.heavy.contains_key(k)))
            .collect();
        if !lookup.is_empty() {
            let found = group_reporters::heavy_reporters(
                self.client,
                self.part,
                (self.policy, self.now_ms),
                &lookup,
            )
            .await?;
            for k in lookup {
                let reporters = found.get(&k).cloned().unwrap_or_default();
                memory.heavy.insert(k, reporters);
            }
        }
        for (key, c) in groups.iter_mut() {
            for (i, reporter) in memory.heavy.get(key).into_iter().flatten() {
                if let Some(w) = c.windows[*i].as_mut() {
                    w.heavy_reporters.push(reporter.clone());
                }
            }
        }
        Ok(())
    }

    /// Assesses one group, steps its standing and records the outcome (a
    /// domain's in the chains of the ESPs that carry it).
    async fn judge(
        &self,
        memory: &mut GroupMemory,
        key: &GroupKey,
        counts: &SenderCounts,
        carriers: &std::collections::BTreeSet<String>,
        snapshots: &mut SnapshotWriter,
        out: &mut GroupVerdicts,
    ) -> crate::error::Result<()> {
        let (level, esp, group) = key;
        let policy = self.policy.for_level(*level);
        let assessed = assess_windows(counts, &policy);
        write_snapshots(snapshots, *level, esp, group, &assessed).await?;
        let before = memory.standing.get(key).copied().unwrap_or_default();
        let subject = Subject {
            level: *level,
            esp,
            key: group,
        };
        let d = decide(
            &policy,
            self.now_ms,
            subject,
            before,
            &assessed,
            &[],
            // No expiry of its own: a row leaving a window rescores its
            // sender, which changes this book and makes the group dirty.
            None,
        );
        if *level == Level::Domain && self.part.is_split() {
            let judged = (&assessed[..], &policy);
            let decision = decision_of((&d, group), &memory.decided, judged, self.now_ms);
            if let Some(row) = decision {
                memory.decided.insert(group.clone());
                out.decisions.push(row);
            }
        } else if *level == Level::Domain {
            let rows = memory
                .told
                .fan_out(group, carriers, &d, &assessed, (&policy, self.now_ms));
            out.changes.extend(rows.into_iter().map(|e| (*level, e)));
        } else {
            out.changes.extend(d.change.clone().map(|e| (*level, e)));
        }
        if d.after != before {
            out.standing_rows.push(GroupStandingRow {
                level: level.as_str().into(),
                esp: esp.clone(),
                key: group.clone(),
                tier: d.after.tier.as_str().into(),
                below_since: d.after.below_since,
                updated_at: self.now_ms,
            });
        }
        if d.after == Standing::default() {
            memory.standing.remove(key);
        } else {
            memory.standing.insert(key.clone(), d.after);
        }
        match d.due_ms {
            Some(at) => memory.due_ms.insert(key.clone(), at),
            None => memory.due_ms.remove(key),
        };
        Ok(())
    }
}

/// Partitioned: the decision to record for a domain just judged, if any —
/// its tier change, or, for a domain above `ok` without a stored decision
/// (its tier was set while one instance scored everything), its tier in
/// force, so every instance can tell its carriers.
fn decision_of(
    (d, domain): (&Decision, &str),
    decided: &HashSet<String>,
    (assessed, policy): (&[Window<'_>], &Policy),
    now_ms: i64,
) -> Option<DecisionRow> {
    if let Some(c) = &d.change {
        return Some(DecisionRow {
            domain: domain.to_string(),
            tier: c.to_tier.clone(),
            rule: c.rule.clone(),
            evidence: c.evidence.clone(),
            at_ms: c.at_ms,
        });
    }
    (d.after.tier != Tier::Ok && !decided.contains(domain)).then(|| DecisionRow {
        domain: domain.to_string(),
        tier: d.after.tier.as_str().into(),
        rule: crate::domains::TIER_IN_FORCE.into(),
        evidence: evidence(Level::Domain, assessed, None, policy, &[]),
        at_ms: now_ms,
    })
}

/// Tiers in force per level above the sender (groups in the default
/// standing with data count as `ok`).
pub fn per_tier(memory: &GroupMemory) -> BTreeMap<(Level, Tier), usize> {
    let mut out: BTreeMap<(Level, Tier), usize> = BTreeMap::new();
    for (k, s) in &memory.standing {
        *out.entry((k.0, s.tier)).or_default() += 1;
    }
    for esp in memory.books.esps() {
        if !memory
            .standing
            .contains_key(&(Level::Esp, esp.clone(), String::new()))
        {
            *out.entry((Level::Esp, Tier::Ok)).or_default() += 1;
        }
    }
    out
}
