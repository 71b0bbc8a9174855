//! The sender level of a run: stream every sender's counts, judge each
//! (looking heavy reporters up only where the cap can matter), and collect
//! the verdicts, snapshots and contributions to the books.

// Sender-keyed maps hold up to every sender of a run; SipHash was the
// scorer's largest cost (measured). Keys are ESP-signed sender names, and
// foldhash still seeds each map at random.
use foldhash::{HashMap, HashMapExt, HashSet};

use clickhouse::Client;

use super::{Memory, Stopwatch};
use crate::books::{Contribution, Contributions};
use crate::chain::PenaltyEntry;
use crate::counts::{SenderCounts, SenderKey};
use crate::hysteresis::Standing;
use crate::policy::{Policy, Tier};
use crate::store::reporters::suspects_heavy_reporters;
use crate::store::snapshots::SnapshotWriter;
use crate::store::standing::StandingRow;
use crate::verdict::Burst;
use crate::verdict::{assess_windows, decide, evidence_tier, write_snapshots, Subject, Window};
use ricochet_kafka::Level;

/// What a run collects while it streams through the senders.
pub(super) struct Verdicts<'p> {
    pub(super) policy: &'p Policy,
    pub(super) now_ms: i64,
    pub(super) bursts: HashMap<SenderKey, Vec<Burst>>,
    /// Tier changes, sealed into the chains once the run has them all.
    pub(super) changes: Vec<PenaltyEntry>,
    pub(super) standing_rows: Vec<StandingRow>,
    /// Each sender's next due time and contributions to the books.
    pub(super) next: Vec<(SenderKey, Option<i64>, Contributions)>,
}

impl Verdicts<'_> {
    /// Steps one sender's standing on its windows' assessments.
    fn judge(
        &mut self,
        memory: &mut Memory,
        key: SenderKey,
        assessed: &[Window<'_>],
        next_expiry_ms: Option<i64>,
        contributions: Contributions,
    ) {
        let before = memory.standing.get(&key).copied().unwrap_or_default();
        let bursts: Vec<&Burst> = self.bursts.get(&key).into_iter().flatten().collect();
        let subject = Subject {
            level: Level::Sender,
            esp: &key.0,
            key: &key.1,
        };
        let d = decide(
            self.policy,
            self.now_ms,
            subject,
            before,
            assessed,
            &bursts,
            next_expiry_ms,
        );
        self.changes.extend(d.change);
        let after = d.after;
        if after != before {
            self.standing_rows.push(StandingRow {
                esp: key.0.clone(),
                sender: key.1.clone(),
                tier: after.tier.as_str().into(),
                below_since: after.below_since,
                updated_at: self.now_ms,
            });
        }
        if after == Standing::default() {
            memory.standing.remove(&key);
        } else if after != before {
            memory.standing.insert(key.clone(), after);
        }
        self.next.push((key, d.due_ms, contributions));
    }
}

/// The run's campaign bursts, by sender.
pub(super) fn bursts_by_sender(bursts: &[Burst]) -> HashMap<SenderKey, Vec<Burst>> {
    let mut by_sender: HashMap<SenderKey, Vec<Burst>> = HashMap::new();
    for b in bursts {
        by_sender
            .entry((b.esp.clone(), b.sender.clone()))
            .or_default()
            .push(b.clone());
    }
    by_sender
}

/// The sender level of one run.
pub(super) struct SenderPass<'a> {
    pub(super) client: &'a Client,
    pub(super) part: crate::partition::Partition,
    pub(super) policy: &'a Policy,
    pub(super) now_ms: i64,
}

impl SenderPass<'_> {
    /// Streams the senders' counts into `verdicts` and `snapshots`; returns
    /// how many senders were assessed.
    pub(super) async fn run(
        &self,
        memory: &mut Memory,
        mut reader: crate::store::reader::Reader,
        mut without_rows: HashSet<SenderKey>,
        verdicts: &mut Verdicts<'_>,
        snapshots: &mut SnapshotWriter,
        watch: &mut Stopwatch,
    ) -> crate::error::Result<usize> {
        let policy = self.policy;
        let names = memory
            .groups
            .names
            .for_run(reader.providers())
            .map_err(|e| crate::ScoringError::TooMany(e.to_string()))?;
        let mut reading = watch.0.elapsed();
        let mut senders = 0;
        // The per-reporter cap only ever lowers a rate: where the counts
        // without it support no tier, they support none with it either, and
        // the cap is not looked up. The others are judged once their
        // reporters are counted.
        let mut suspects: Vec<(SenderKey, SenderCounts, Contributions)> = vec![];
        loop {
            let started = std::time::Instant::now();
            let next = reader.next().await?;
            reading += started.elapsed();
            let Some((key, slices)) = next else { break };
            senders += 1;
            without_rows.remove(&key);
            // The books take the counts before the cap: each level above
            // applies its own, per reporter across the group.
            let contributions = slices
                .iter()
                .map(|(slice, c)| (slice.clone(), Contribution::new(c, &names)))
                .collect();
            let c = SenderCounts::total(slices);
            let assessed = assess_windows(&c, policy);
            if evidence_tier(&assessed).is_some_and(|t| t > Tier::Ok) {
                suspects.push((key, c, contributions));
                continue;
            }
            write_snapshots(snapshots, Level::Sender, &key.0, &key.1, &assessed).await?;
            verdicts.judge(memory, key, &assessed, c.next_expiry_ms, contributions);
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
        let mut heavy =
            suspects_heavy_reporters(self.client, self.part, policy, &suspects, self.now_ms)
                .await?;
        for (key, mut c, contributions) in suspects {
            for (i, reporter) in heavy.remove(&key).unwrap_or_default() {
                if let Some(w) = c.windows[i].as_mut() {
                    w.heavy_reporters.push(reporter);
                }
            }
            let assessed = assess_windows(&c, policy);
            write_snapshots(snapshots, Level::Sender, &key.0, &key.1, &assessed).await?;
            verdicts.judge(memory, key, &assessed, c.next_expiry_ms, contributions);
        }
        // No rows, no evidence: these keep their tier, but a cool-down still
        // makes them due.
        senders += without_rows.len();
        for key in without_rows {
            verdicts.judge(memory, key, &[], None, Contributions::default());
        }
        watch.lap("heavy reporters and suspects");
        Ok(senders)
    }
}
