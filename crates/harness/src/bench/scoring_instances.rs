//! The partitioned part of `ricochet bench scoring --instances N`: N
//! scoring instances, each owning the ESPs with `cityHash64(esp) % N = i`,
//! run side by side in this process over the bench database, timed as one
//! full rescore and one incremental run (wall clock of the slowest).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use ricochet_scoring::engine::{RunReport, Scorer};
use ricochet_scoring::partition::Partition;
use ricochet_scoring::{Policy, Tier};
use ricochet_storage::ClickHouseConfig;

/// What the N instances did in one state of the parts.
pub(super) struct SplitRound {
    /// Wall seconds of the full rescores, run at once.
    pub full_secs: f64,
    /// Senders the full rescores assessed, summed.
    pub full_senders: usize,
    /// Wall seconds of the incremental runs, run at once.
    pub incr_secs: f64,
    /// Senders per tier in force after the full runs, summed.
    pub per_tier: BTreeMap<Tier, usize>,
}

/// One instance: its scorer and the runtime it always runs on (its
/// client's pooled connections belong to that runtime).
struct Instance {
    scorer: Scorer,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Dropped in async code, where a blocking runtime drop would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs every instance at `now_ms` at once, each on a thread of its own (as
/// separate processes would, CPU included); the wall seconds and the reports.
async fn run_all(instances: &mut [Instance], now_ms: i64) -> Result<(f64, Vec<RunReport>)> {
    let started = Instant::now();
    let reports = tokio::task::block_in_place(|| {
        std::thread::scope(|threads| {
            let running: Vec<_> = (instances.iter_mut())
                .map(|i| {
                    let runtime = i.runtime.as_ref().expect("kept until dropped");
                    let scorer = &mut i.scorer;
                    threads.spawn(move || -> Result<RunReport> {
                        Ok(runtime.block_on(scorer.run(now_ms))?)
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|t| t.join().expect("a scorer thread panicked"))
                .collect::<Result<Vec<_>>>()
        })
    })?;
    Ok((started.elapsed().as_secs_f64(), reports))
}

/// N new instances: a full rescore each, `trickle` (new complaints), then
/// an incremental run each.
pub(super) async fn split_round<F>(
    ch: &ClickHouseConfig,
    instances: u16,
    now_ms: i64,
    trickle: F,
) -> Result<SplitRound>
where
    F: std::future::Future<Output = Result<()>>,
{
    let mut scorers = (0..instances)
        .map(|i| {
            let mut scorer = Scorer::new(ch.client(), Policy::default())
                .partitioned(Partition::new(i, instances)?);
            scorer.load_margin_ms = 0;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(Instance {
                scorer,
                runtime: Some(runtime),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    eprintln!("full rescore ({instances} instances at once) ...");
    let (full_secs, full) = run_all(&mut scorers, now_ms).await?;
    eprintln!("full rescore ({instances} instances at once): {full_secs:.2} s");
    let mut per_tier: BTreeMap<Tier, usize> = BTreeMap::new();
    for r in &full {
        for (t, n) in &r.per_tier {
            *per_tier.entry(*t).or_default() += n;
        }
    }
    trickle.await?;
    eprintln!("incremental run ({instances} instances at once) ...");
    let (incr_secs, _) = run_all(&mut scorers, now_ms + 1_000).await?;
    eprintln!("incremental run ({instances} instances at once): {incr_secs:.2} s");
    Ok(SplitRound {
        full_secs,
        full_senders: full.iter().map(|r| r.senders).sum(),
        incr_secs,
        per_tier,
    })
}
