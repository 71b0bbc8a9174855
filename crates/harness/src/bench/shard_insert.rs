//! `ricochet bench shard-insert`: on a cluster, the two ways a loader can
//! insert so that an acknowledgement means the rows are on their shard,
//! timed alternately on the same kind of rows in one run:
//!
//! - **foreground distributed**: one insert into the `Distributed` table
//!   with `distributed_foreground_insert = 1` (what the loader does): the
//!   node taking it writes its own shard's rows and forwards the rest;
//! - **per shard**: the client splits the batch by the sharding key and
//!   inserts each part straight into its shard's `_local` table, all at once.
//!
//! The broker is left out: it is the loader's limit on this machine (see
//! BENCHMARKS.md, loader), so only ClickHouse's side is compared here.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use ricochet_storage::{ClickHouseConfig, ComplaintRow};

use crate::stats::median;

/// Runs the bench and prints its table.
pub async fn run(rows: usize, batch: usize, rounds: usize) -> Result<ExitCode> {
    let ch = super::bench_database(&format!("bench_shard_insert_{}", std::process::id())).await?;
    let result = measure(&ch, rows, batch, rounds).await;
    super::drop_bench_database(&ch).await?;
    result
}

async fn measure(
    ch: &ClickHouseConfig,
    rows: usize,
    batch: usize,
    rounds: usize,
) -> Result<ExitCode> {
    ensure!(
        ch.cluster.is_some(),
        "needs a cluster: start the stack with RICOCHET_CLICKHOUSE_SHARDS=2 and load its env"
    );
    let nodes = super::bench_nodes(ch)?;
    let senders = 10_000;
    let shard_of = shards_of_senders(ch, senders, nodes.len()).await?;
    let (mut distributed, mut per_shard) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let batches = make_batches(round, rows, batch, senders);
        let started = Instant::now();
        for b in &batches {
            insert_all(ch, "complaints", b).await?;
        }
        distributed.push(rows as f64 / started.elapsed().as_secs_f64());
        let batches = make_batches(round + rounds, rows, batch, senders);
        let started = Instant::now();
        for b in &batches {
            insert_per_shard(&nodes, &shard_of, b).await?;
        }
        per_shard.push(rows as f64 / started.elapsed().as_secs_f64());
        eprintln!(
            "round {}: foreground distributed {:.0} rows/s, per shard {:.0} rows/s",
            round + 1,
            distributed[round],
            per_shard[round]
        );
    }
    check_placement(ch, &nodes, 2 * rows * rounds).await?;
    let (d, p) = (median(distributed), median(per_shard));
    println!();
    println!(
        "ricochet bench shard-insert: {} shards, {rows} rows per path and round in batches of {batch}, {rounds} rounds alternating, medians",
        nodes.len()
    );
    println!();
    println!("| insert path | rows/s |");
    println!("|---|---:|");
    println!("| foreground distributed (the loader's) | {d:.0} |");
    println!("| per shard, by the sharding key, all shards at once | {p:.0} |");
    println!();
    println!("per shard / foreground distributed: {:.2}x", p / d);
    Ok(ExitCode::SUCCESS)
}

/// Each bench sender's shard, as the `Distributed` table computes it
/// (asked of ClickHouse once, before any timing).
async fn shards_of_senders(
    ch: &ClickHouseConfig,
    senders: usize,
    shards: usize,
) -> Result<Vec<usize>> {
    let sql = format!(
        "SELECT toUInt64(cityHash64(concat('esp-', toString(number % 20)), concat('sender-', toString(number))) % {shards})
         FROM numbers({senders}) ORDER BY number"
    );
    let out: Vec<u64> = ch.client().query(&sql).fetch_all().await?;
    Ok(out.into_iter().map(|s| s as usize).collect())
}

/// `rows` complaints of round `round` (unique jtis) in batches of `batch`;
/// row i is sender `i % senders`.
fn make_batches(round: usize, rows: usize, batch: usize, senders: usize) -> Vec<Vec<ComplaintRow>> {
    let now_ms = ricochet_token::verify::unix_now() * 1000;
    let row = |i: usize| {
        let s = i % senders;
        let (jti, esp, sender) = (
            format!("shard-bench-{round}-{i}"),
            format!("esp-{}", s % 20),
            format!("sender-{s}"),
        );
        ComplaintRow {
            kafka_offset: i as u64,
            ..crate::rows::complaint_row(&jti, &esp, &sender, "p1.example", "unwanted", now_ms)
        }
    };
    (0..rows)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| c.iter().map(|i| row(*i)).collect())
        .collect()
}

/// One batch split by shard, each part into its node's `_local` table, at once.
async fn insert_per_shard(
    nodes: &[ClickHouseConfig],
    shard_of: &[usize],
    batch: &[ComplaintRow],
) -> Result<()> {
    let mut parts: Vec<Vec<ComplaintRow>> = vec![vec![]; nodes.len()];
    for r in batch {
        let sender: usize = r.sender["sender-".len()..].parse()?;
        parts[shard_of[sender]].push(r.clone());
    }
    let inserts = (nodes.iter().zip(&parts)).map(|(n, p)| insert_all(n, "complaints_local", p));
    futures::future::try_join_all(inserts).await?;
    Ok(())
}

/// Inserts `rows` into `table` of `ch`'s database in one insert.
async fn insert_all(ch: &ClickHouseConfig, table: &str, rows: &[ComplaintRow]) -> Result<()> {
    let client = ch.client();
    let mut insert = client.insert::<ComplaintRow>(table).await?;
    for r in rows {
        insert.write(r).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Every row counted once through the `Distributed` table, and every node
/// holding only rows of its own shard (which also checks that the node
/// order is the cluster's shard order).
async fn check_placement(
    ch: &ClickHouseConfig,
    nodes: &[ClickHouseConfig],
    expected: usize,
) -> Result<()> {
    let n: u64 = ch
        .client()
        .query("SELECT uniqExact(jti) FROM complaints WHERE jti LIKE 'shard-bench-%'")
        .fetch_one()
        .await?;
    ensure!(
        n as usize == expected,
        "{n} rows counted, {expected} inserted"
    );
    for (i, node) in nodes.iter().enumerate() {
        let sql = format!(
            "SELECT count() FROM complaints_local WHERE cityHash64(esp, sender) % {} != {i}",
            nodes.len()
        );
        let misplaced: u64 = node
            .client()
            .query(&sql)
            .fetch_one()
            .await
            .context("placement")?;
        ensure!(
            misplaced == 0,
            "node {} holds {misplaced} rows of another shard",
            i + 1
        );
    }
    Ok(())
}
