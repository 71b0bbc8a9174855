//! `ricochet bench scoring`: a full rescore and an incremental run over
//! synthetic rows inserted straight into ClickHouse, against two baselines
//! measured in the same run: one plain pass over the complaints (the floor
//! any scoring pays) and the per-token GROUP BY a first version used.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ricochet_scoring::engine::{RunReport, Scorer};
use ricochet_scoring::{Policy, Tier};
use ricochet_storage::ClickHouseConfig;

/// Bench "now": synthetic rows spread over the 30 days before it.
const NOW_S: i64 = 1_795_000_000;
const DAY_S: i64 = 86_400;

/// How a run goes besides its size.
pub struct Options {
    /// Keep the database at the end.
    pub keep: bool,
    /// The database to use (and reuse if it holds this bench's rows).
    pub database: Option<String>,
    /// Time only the scorer, on the parts as found.
    pub scorer_only: bool,
    /// Scoring instances to run side by side after the one-instance runs
    /// of each round (1: none).
    pub instances: u16,
}

/// Runs the bench and prints its table.
pub async fn run(senders: u64, complaints: u64, options: Options) -> Result<ExitCode> {
    let Options {
        keep,
        database,
        scorer_only,
        instances,
    } = options;
    anyhow::ensure!(
        senders >= 100 && complaints >= senders,
        "need at least 100 senders and one complaint per sender"
    );
    let ch = crate::bench::bench_database(
        &database.unwrap_or_else(|| format!("bench_scoring_{}", std::process::id())),
    )
    .await?;
    let client = ch.client();
    let result = measure(&ch, (senders, complaints), scorer_only, instances).await;
    if !keep {
        super::drop_bench_database(&ch).await?;
    }
    drop(client);
    result
}

async fn timed<F: std::future::Future<Output = Result<T>>, T>(
    what: &str,
    f: F,
) -> Result<(T, f64)> {
    eprintln!("{what} ...");
    let started = Instant::now();
    let out = f.await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{what}: {secs:.2} s");
    Ok((out, secs))
}

/// Merges `complaints` and `deliveries` to one part per partition: on a
/// cluster, each node's `_local` tables (a `Distributed` table has none).
async fn merge(ch: &ClickHouseConfig) -> Result<()> {
    let suffix = if ch.cluster.is_some() { "_local" } else { "" };
    for node in super::bench_nodes(ch)? {
        for table in ["complaints", "deliveries"] {
            exec(&node, &format!("OPTIMIZE TABLE {table}{suffix} FINAL")).await?;
        }
    }
    Ok(())
}

async fn exec(ch: &ClickHouseConfig, sql: &str) -> Result<()> {
    ch.client()
        .query(sql)
        .execute()
        .await
        .with_context(|| format!("running {}", sql.lines().next().unwrap_or(sql)))
}

/// SQL: the campaign of sender number `s` (5,000 campaigns).
const CAMPAIGN_OF_S: &str = "concat('c', toString(s % 5000))";
/// SQL: the From domain of sender number `s` (20,000 domains).
const DOMAIN_OF_S: &str = "concat('d', toString(s % 20000), '.example')";

/// Inserts the synthetic deliveries and complaints; returns both fill times.
async fn fill(ch: &ClickHouseConfig, senders: u64, complaints: u64) -> Result<(f64, f64)> {
    // Each sender: one delivery report a day for 30 days, 2,000-2,600 a day,
    // broken down by its campaign (5,000 campaigns of 200 sender ids each)
    // and From domain (20,000 domains of 50 sender ids, across the ESPs), as
    // the complaints carry them: every level has its denominator.
    // Complaints: spread over the senders and the 30 days; one sender in a
    // hundred draws ten times its share (the offenders). One complaint in a
    // thousand goes to one of 100 offenders from a single account per
    // offender (about 500 each): heavy reporters for the cap to find.
    let (_, fill_deliveries) = timed(
        &format!("inserting {} delivery reports", senders * 30),
        exec(
            ch,
            &format!(
                "INSERT INTO deliveries (esp, sender, provider, campaign, from_domain, hour, delivered,
                                         received_at)
                 SELECT concat('esp-', toString(s % 20)), concat('sender-', toString(s)),
                        ['gmail.example','yahoo.example','outlook.example'][(s + d) % 3 + 1],
                        {CAMPAIGN_OF_S}, {DOMAIN_OF_S},
                        toStartOfHour(toDateTime({NOW_S} - d * {DAY_S} - 5400)), 2000 + (s % 7) * 100,
                        fromUnixTimestamp64Milli(toInt64({NOW_S} - d * {DAY_S}) * 1000)
                 FROM (SELECT number % {senders} AS s, intDiv(number, {senders}) AS d FROM numbers({}))",
                senders * 30
            ),
        ),
    )
    .await?;
    let offenders = senders / 100;
    let (_, fill_complaints) = timed(
        &format!("inserting {complaints} complaints"),
        exec(
            ch,
            &format!(
                "INSERT INTO complaints (jti, esp, sender, provider, code, nature, campaign, from_domain,
                                         recipient_domain, reporter, recipient_proven, token_iat, token_exp, reported_at,
                                         received_at, kafka_partition, kafka_offset)
                 SELECT concat('jti-', toString(number)), concat('esp-', toString(s % 20)), concat('sender-', toString(s)),
                        ['gmail.example','yahoo.example','outlook.example'][number % 3 + 1],
                        multiIf(number % 50 = 0, 'phishing', number % 20 = 0, 'not-spam', 'unwanted'),
                        'marketing', {CAMPAIGN_OF_S}, {DOMAIN_OF_S}, 'example.net',
                        if(number % 1000 = 0, concat('heavy-', toString(s)),
                           concat('r', toString(cityHash64(number) % 100000000))), true,
                        toDateTime(at - 60), toDateTime(at + 60 * {DAY_S}),
                        fromUnixTimestamp64Milli(at * 1000), fromUnixTimestamp64Milli(at * 1000 + 1000),
                        0, number
                 FROM (SELECT number,
                              if(number % 10 = 0 AND {offenders} > 0, intDiv(number, 10) % {offenders}, number % {senders}) AS s,
                              toInt64({NOW_S} - 1 - (cityHash64(number, 1) % (30 * {DAY_S}))) AS at
                       FROM numbers({complaints}))"
            ),
        ),
    )
    .await?;
    Ok((fill_deliveries, fill_complaints))
}

/// One round of the bench on the parts in one state.
struct Round {
    state: &'static str,
    /// One GROUP BY sender over complaints (s).
    floor: f64,
    /// The first version's GROUP BY jti (s).
    naive: f64,
    full_secs: f64,
    full_senders: usize,
    incr_secs: f64,
    incr_senders: usize,
    /// The phases of the full and the incremental run.
    phases: [String; 2],
    /// Senders per tier after the incremental run.
    per_tier: std::collections::BTreeMap<Tier, usize>,
    /// The same on N instances side by side, if asked.
    split: Option<super::scoring_instances::SplitRound>,
}

async fn measure(
    ch: &ClickHouseConfig,
    (senders, complaints): (u64, u64),
    scorer_only: bool,
    instances: u16,
) -> Result<ExitCode> {
    let fill_secs = ensure_filled(ch, senders, complaints).await?;
    let offenders = senders / 100;
    eprintln!(
        "{senders} senders, {complaints} complaints ({} per sender; {offenders} senders draw about 10x their share)",
        complaints / senders
    );
    // The third round runs on the merged parts plus the new rows the second
    // round's incremental run inserted: a partition with one big part and a
    // small new one, the state a running system is usually in.
    let first = if fill_secs.1 > 0.0 {
        "as inserted"
    } else {
        "as found"
    };
    let states: &[&'static str] = if scorer_only {
        &[first]
    } else {
        &[first, "merged", "merged + new"]
    };
    let mut rounds = vec![];
    for &state in states {
        if state == "merged" {
            timed(
                "merging (OPTIMIZE FINAL; background merges reach the same state over time)",
                merge(ch),
            )
            .await?;
        }
        rounds.push(round(ch, state, senders, (scorer_only, instances)).await?);
    }
    print_rounds(senders, complaints, fill_secs, &rounds);
    Ok(ExitCode::SUCCESS)
}

/// Fills the synthetic rows unless they are there; the seconds each fill took.
async fn ensure_filled(ch: &ClickHouseConfig, senders: u64, complaints: u64) -> Result<(f64, f64)> {
    let filled: u64 = ch
        .client()
        .query("SELECT count() FROM complaints WHERE jti LIKE 'jti-%'")
        .fetch_one()
        .await?;
    if filled == complaints {
        eprintln!(
            "{} already holds the synthetic rows; not filling again",
            ch.database
        );
        return Ok((0.0, 0.0));
    }
    anyhow::ensure!(filled == 0, "{} holds another bench's rows", ch.database);
    fill(ch, senders, complaints).await
}

/// The two baselines (unless only the scorer is measured), a full rescore
/// by a new scorer, a trickle of new complaints and an incremental run.
async fn round(
    ch: &ClickHouseConfig,
    state: &'static str,
    senders: u64,
    (scorer_only, instances): (bool, u16),
) -> Result<Round> {
    let client = ch.client();
    let now_ms = NOW_S * 1000;
    let (floor, naive) = if scorer_only {
        (f64::NAN, f64::NAN)
    } else {
        baselines(ch).await?
    };
    let mut scorer = Scorer::new(client.clone(), Policy::default());
    // The fill ran seconds ago; in service such rows are older than the
    // load margin and no longer make their senders dirty.
    scorer.load_margin_ms = 0;
    let (full, full_secs) = timed("full rescore (new scorer)", async {
        Ok(scorer.run(now_ms).await?)
    })
    .await?;
    trickle(ch, state, senders, now_ms).await?;
    // Every level: the touched senders, their ESPs, campaigns and domains.
    let (incr, incr_secs) = timed("incremental run", async {
        Ok(scorer.run(now_ms + 1_000).await?)
    })
    .await?;
    print_tiers(&full);
    let split = match instances {
        0 | 1 => None,
        n => {
            let later = now_ms + 2_000;
            let prefix = format!("{state}-split");
            let trickled = trickle(ch, &prefix, senders, later);
            Some(super::scoring_instances::split_round(ch, n, later, trickled).await?)
        }
    };
    let phases = |r: &RunReport| {
        let list: Vec<String> = r
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.2} s"))
            .collect();
        list.join(", ")
    };
    Ok(Round {
        state,
        floor,
        naive,
        full_secs,
        full_senders: full.senders,
        incr_secs,
        incr_senders: incr.senders,
        phases: [phases(&full), phases(&incr)],
        per_tier: incr.per_tier.clone(),
        split,
    })
}

/// Seconds of the floor (one GROUP BY sender) and of the first version's
/// GROUP BY jti.
async fn baselines(ch: &ClickHouseConfig) -> Result<(f64, f64)> {
    let client = ch.client();
    let floor_sql =
        "SELECT count() FROM (SELECT esp, sender, count() FROM complaints GROUP BY esp, sender)";
    let naive_sql = "SELECT count() FROM (SELECT esp, sender, jti, argMin((code, provider, reporter), received_at)
                     FROM complaints GROUP BY esp, sender, jti)";
    let (_, floor) = timed("floor: one GROUP BY sender over complaints", async {
        Ok(client.query(floor_sql).fetch_one::<u64>().await?)
    })
    .await?;
    let (_, naive) = timed("baseline: GROUP BY jti (first version)", async {
        Ok(client.query(naive_sql).fetch_one::<u64>().await?)
    })
    .await?;
    Ok((floor, naive))
}

/// A trickle of new complaints for one sender in a thousand.
async fn trickle(ch: &ClickHouseConfig, state: &str, senders: u64, now_ms: i64) -> Result<()> {
    let touched = (senders / 1000).max(1);
    exec(
        ch,
        &format!(
            "INSERT INTO complaints (jti, esp, sender, provider, code, nature, campaign, from_domain,
                                     reporter, recipient_proven, token_iat, token_exp, reported_at,
                                     received_at)
             SELECT concat('new-{state}-', toString(number)), concat('esp-', toString(s % 20)),
                    concat('sender-', toString(s)), 'gmail.example', 'unwanted', 'marketing',
                    {CAMPAIGN_OF_S}, {DOMAIN_OF_S}, '', true,
                    toDateTime({NOW_S} - 60), toDateTime({NOW_S} + {DAY_S}),
                    fromUnixTimestamp64Milli({now_ms} + 500), fromUnixTimestamp64Milli({now_ms} + 600)
             FROM (SELECT number, (number * 7919) % {senders} AS s FROM numbers({touched}))"
        ),
    )
    .await
}

/// The tiers a full run left, at the sender level and the levels above.
fn print_tiers(full: &RunReport) {
    let tiers: Vec<String> = Tier::ALL
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t.as_str(),
                full.per_tier.get(t).copied().unwrap_or(0)
            )
        })
        .collect();
    eprintln!("tiers after the full run: {}", tiers.join(", "));
    let groups: Vec<String> = full
        .group_tiers
        .iter()
        .map(|((level, tier), n)| format!("{level} {} {n}", tier.as_str()))
        .collect();
    eprintln!(
        "ESP, campaign and domain levels after the full run: {} assessed ({})",
        full.groups.values().sum::<usize>(),
        groups.join(", ")
    );
}

fn print_rounds(
    senders: u64,
    complaints: u64,
    (fill_deliveries, fill_complaints): (f64, f64),
    rounds: &[Round],
) {
    println!();
    println!("scoring bench: {senders} senders, {complaints} complaints, 30-day windows");
    println!(
        "fill: deliveries {fill_deliveries:.1} s, complaints {fill_complaints:.1} s (not part of the figures below)"
    );
    println!(
        "{:<12} {:>9} {:>12} {:>10} {:>9} {:>12} {:>11} {:>11}",
        "parts",
        "floor s",
        "GROUP BY jti",
        "full s",
        "senders",
        "incremental",
        "senders",
        "full/floor"
    );
    for r in rounds {
        println!(
            "{:<12} {:>9.2} {:>12.2} {:>10.2} {:>9} {:>10.2} s {:>11} {:>10.2}x",
            r.state,
            r.floor,
            r.naive,
            r.full_secs,
            r.full_senders,
            r.incr_secs,
            r.incr_senders,
            r.full_secs / r.floor
        );
    }
    print_split(rounds);
    println!("phases:");
    for r in rounds {
        println!("  {}, full: {}", r.state, r.phases[0]);
        println!("  {}, incremental: {}", r.state, r.phases[1]);
    }
    // The scorer runs in this process: its memory (standings, due times,
    // each sender's contributions to the books) is most of the peak.
    if let Some(peak) = peak_rss() {
        println!("peak resident memory of this process (scorer included): {peak}");
    }
}

/// The table of the rounds run on several instances too, if any.
fn print_split(rounds: &[Round]) {
    let split: Vec<(&Round, &super::scoring_instances::SplitRound)> = (rounds.iter())
        .filter_map(|r| r.split.as_ref().map(|s| (r, s)))
        .collect();
    if split.is_empty() {
        return;
    }
    println!();
    println!("the same parts scored by N instances side by side (partitioned by ESP), after the one-instance runs:");
    println!(
        "{:<12} {:>10} {:>9} {:>12} {:>14} {:>16} {:>10}",
        "parts", "full s", "senders", "incremental", "1 inst/N full", "1 inst/N incr", "same tiers"
    );
    for (r, s) in split {
        println!(
            "{:<12} {:>10.2} {:>9} {:>10.2} s {:>13.2}x {:>15.2}x {:>10}",
            r.state,
            s.full_secs,
            s.full_senders,
            s.incr_secs,
            r.full_secs / s.full_secs,
            r.incr_secs / s.incr_secs,
            if s.per_tier == r.per_tier {
                "yes"
            } else {
                "NO"
            }
        );
        if s.per_tier != r.per_tier {
            println!(
                "  one instance: {:?}; N instances: {:?}",
                r.per_tier, s.per_tier
            );
        }
    }
}

/// `VmHWM` of this process, as /proc reports it (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}
