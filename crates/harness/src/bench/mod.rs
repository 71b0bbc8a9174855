//! `ricochet bench`: benchmarks that print figures and ratios against a
//! baseline measured in the same run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::ingest::post_body;
use crate::participants::register;
use ricochet_registry::ParticipantKind;
use ricochet_storage::{ClickHouseConfig, Migrator};
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, Nature, SigningKey, TokenRequest};
use serde_json::json;

mod freshness;
mod ingest;
mod loader;
mod milter;
mod overload;
mod provider_list;
mod scoring;
mod scoring_instances;
mod shard_insert;
mod verify_rates;

use ingest::bench_ingest;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive a real ingest process over HTTP with pre-minted tokens.
    ///
    /// Starts `ricochet-ingest` (next to this binary) against the broker in
    /// RICOCHET_KAFKA_BROKERS with its own registry and topic, measures the
    /// token-verification baselines in this process (A: one at a time; C:
    /// in batches; R: one at a time on `ring`), then sends every token and
    /// prints complaints/s, latency percentiles, the ratios to the baselines
    /// per core ingest used, and ingest's peak RSS. Each round measures the
    /// baselines before and after its drives and compares each drive with
    /// their mean; the table gives medians over the rounds. Last, per batch size, what
    /// batches of valid and of forged tokens cost against single checks, with
    /// 4 ESP keys and with a key per token (the worst case).
    Ingest {
        /// Tokens to pre-mint and submit.
        #[arg(long, default_value_t = 50_000)]
        tokens: usize,
        /// Complaints per request.
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Where ingest verifies, to compare: pool, blocking, inline (comma-separated).
        #[arg(long, default_value = "pool", value_delimiter = ',')]
        modes: Vec<String>,
        /// How ingest checks Ed25519 signatures, to compare: single, batch.
        #[arg(long, default_value = "single,batch", value_delimiter = ',')]
        signature_checks: Vec<String>,
        /// Signatures per batch equation (ingest's --verify-batch, and baseline C's).
        #[arg(long, default_value_t = 256)]
        verify_batch: usize,
        /// The ingest binary (default: next to this one).
        #[arg(long)]
        ingest_bin: Option<PathBuf>,
        /// Rounds; each round measures the baseline and every mode again, and the
        /// table shows medians (a 2-core machine running client, broker and
        /// service at once is noisy).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Load a pre-filled topic into ClickHouse with the loader, and with the
    /// naive pipe a user would write instead, in one run; print both rates.
    ///
    /// The pipe is `ricochet bench consume-json` (a console consumer on the
    /// project's librdkafka: Debian's kcat is too old for tansu) piped into
    /// curl posting `INSERT ... FORMAT JSONEachRow` to ClickHouse's HTTP port.
    Loader {
        /// Records to pre-fill the topic with.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// The loader binary (default: next to this one).
        #[arg(long)]
        loader_bin: Option<PathBuf>,
    },
    /// Score synthetic senders inserted straight into ClickHouse: a full
    /// rescore and an incremental run, before and after merging, against a
    /// plain pass over the complaints and the per-token GROUP BY, same run.
    ///
    /// Uses its own database (dropped at the end unless --keep).
    Scoring {
        /// Senders (each with a delivery report a day for 30 days).
        #[arg(long, default_value_t = 1_000_000)]
        senders: u64,
        /// Complaints spread over the senders and 30 days.
        #[arg(long, default_value_t = 50_000_000)]
        complaints: u64,
        /// Keep the bench database for inspection.
        #[arg(long)]
        keep: bool,
        /// Use this database; if it holds this bench's rows already (a run
        /// with --keep), they are reused instead of inserted again.
        #[arg(long)]
        database: Option<String>,
        /// Time only the scorer: one full rescore and one incremental run
        /// on the parts as found, without the baselines or the merge (for
        /// profiling; the figures are not comparable to a whole run's).
        #[arg(long)]
        scorer_only: bool,
        /// After each round's one-instance runs, also run this many scoring
        /// instances side by side (partitioned by ESP, as
        /// `ricochet-scoring --instances N`) over the same parts, and print
        /// their times and whether they reach the same tiers (1: skip).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        instances: u16,
    },
    /// End-to-end freshness: from a provider's 200 to the tier change in the
    /// ESP's offenders API, under steady background load.
    ///
    /// Starts ingest, loader and scoring (next to this binary) with their own
    /// registry, topics and database; sends background complaints at --rate
    /// and, spread over the run, probes that each push one sender to
    /// `throttle`; prints p50/p99 next to the baseline (probe complaints in
    /// ClickHouse, same probes).
    Freshness {
        /// Background complaints per second.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Seconds of background load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Probes (tier changes) measured during the load.
        #[arg(long, default_value_t = 40)]
        probes: usize,
        /// Scoring interval given to the scoring service, seconds.
        #[arg(long, default_value_t = 0.25)]
        scoring_interval: f64,
        /// Loader batch age limit, ms.
        #[arg(long, default_value_t = 200)]
        loader_batch_ms: u64,
    },
    /// The provider list an MTA polls: with --keys senders at throttle or
    /// above (and their ESPs) scored by the real scoring process, times
    /// sequential requests for the whole list, the changes since the
    /// current version and a 304 revalidation, against /healthz on the same
    /// server.
    ProviderList {
        /// Senders listed.
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Sequential requests per case.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
    },
    /// What the milters cost Postfix: three Postfix instances of their own
    /// on loopback (no milter, the sign milter, the check milter) take the
    /// same messages over SMTP and discard them after queueing; prints
    /// messages/s, latency, each milter's CPU per message and the ratio to
    /// the instance without a milter, medians over the rounds. Needs root
    /// and Postfix (`deploy/local/stack install`).
    Milter {
        /// Messages per configuration and round.
        #[arg(long, default_value_t = 3_000)]
        messages: usize,
        /// SMTP sessions at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Rounds (each measures the three configurations in turn).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Ingest at twice its capacity: measures capacity (8 in flight), then
    /// offers twice that open-loop for --seconds with the default limits, and
    /// prints answers by status with their latency and ingest's peak RSS.
    Overload {
        /// Seconds of overload.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// On a cluster: insert the same kind of complaint rows through the
    /// `Distributed` table with foreground inserts (as the loader does) and
    /// split per shard straight into each shard's `_local` table, rounds
    /// alternating; print rows/s of each and the ratio. Needs the stack
    /// started with RICOCHET_CLICKHOUSE_SHARDS=2 (or another cluster).
    ShardInsert {
        /// Rows per path and round.
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Rows per insert (the loader's batches run about 20,000 here).
        #[arg(long, default_value_t = 20_000)]
        batch: usize,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Print every record of a topic's value, one per line, then exit at the end
    /// of every partition (the console consumer of the naive pipe).
    #[command(hide = true)]
    ConsumeJson {
        /// Topic to read from the beginning.
        #[arg(long)]
        topic: String,
    },
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Freshness {
            rate,
            seconds,
            probes,
            scoring_interval,
            loader_batch_ms,
        } => {
            freshness::run(freshness::FreshnessArgs {
                rate,
                seconds: seconds.max(10),
                probes: probes.max(1),
                scoring_interval,
                loader_batch_ms,
            })
            .await
        }
        BenchCommand::Scoring {
            senders,
            complaints,
            keep,
            database,
            scorer_only,
            instances,
        } => {
            let options = scoring::Options {
                keep,
                database,
                scorer_only,
                instances,
            };
            scoring::run(senders, complaints, options).await
        }
        BenchCommand::ProviderList { keys, requests } => provider_list::run(keys, requests).await,
        BenchCommand::Milter {
            messages,
            concurrency,
            rounds,
        } => milter::run(messages, concurrency, rounds).await,
        BenchCommand::Ingest {
            tokens,
            batch,
            concurrency,
            modes,
            signature_checks,
            verify_batch,
            ingest_bin,
            rounds,
        } => {
            bench_ingest(ingest::IngestBench {
                tokens,
                batch: batch.max(1),
                concurrency: concurrency.max(1),
                modes,
                checks: signature_checks,
                verify_batch: verify_batch.clamp(2, 1000),
                ingest_bin,
                rounds: rounds.max(1),
            })
            .await
        }
        BenchCommand::Overload { seconds } => overload::bench_overload(seconds.max(1)).await,
        BenchCommand::Loader {
            records,
            loader_bin,
        } => loader::run(records, loader_bin).await,
        BenchCommand::ShardInsert {
            rows,
            batch,
            rounds,
        } => shard_insert::run(rows.max(1), batch.max(1), rounds.max(1)).await,
        BenchCommand::ConsumeJson { topic } => loader::consume_json(&topic),
    }
}

/// ESPs in the bench world.
pub(crate) const BENCH_ESPS: usize = 4;

/// A registry of ESPs and one provider, and tokens of those ESPs.
pub(crate) struct BenchWorld {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) registry_path: PathBuf,
    pub(crate) provider: SigningKey,
    pub(crate) tokens: Vec<String>,
}

/// [`bench_world_of`] with [`BENCH_ESPS`] ESPs.
pub(crate) fn bench_world(n: usize) -> Result<BenchWorld> {
    // Several ESPs, as a provider's batch mixes them: batch verification is
    // faster with fewer distinct keys, so one key would flatter it.
    bench_world_of(n, BENCH_ESPS)
}

/// A registry with `keys` ESPs (one key each) and one provider, and `n`
/// tokens signed by the ESPs in turn.
pub(crate) fn bench_world_of(n: usize, keys: usize) -> Result<BenchWorld> {
    let dir = tempfile::tempdir()?;
    let registry_path = dir.path().join("registry.toml");
    let esps = (1..=keys)
        .map(|i| {
            register(
                &registry_path,
                ParticipantKind::Esp,
                &format!("bench-esp{i}.example"),
                (Algorithm::EdDSA, &format!("bench-esp-{i}")),
                &[],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let provider = register(
        &registry_path,
        ParticipantKind::Provider,
        "bench-mail.example",
        (Algorithm::EdDSA, "bench-mail-1"),
        &["bench.example"],
    )?;

    eprintln!("minting {n} tokens ...");
    let now = unix_now();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let esp = i % keys;
            let req = TokenRequest::new(
                &format!("bench-esp{}.example", esp + 1),
                &format!("sender-{}", i % 1000),
                Nature::Marketing,
                &format!("user{i}@bench.example"),
                now - 60,
            );
            mint(&esps[esp], &req).map(|(t, _)| t)
        })
        .collect::<Result<_, _>>()?;

    Ok(BenchWorld {
        dir,
        registry_path,
        provider,
        tokens,
    })
}

/// Complaint request bodies of `batch` tokens each.
pub(crate) fn batch_bodies(tokens: &[String], batch: usize) -> Vec<Vec<u8>> {
    tokens
        .chunks(batch)
        .map(|chunk| {
            let items: Vec<_> = chunk
                .iter()
                .map(|t| json!({"token": t, "code": "unwanted", "reported_at": crate::clock::now_rfc3339()}))
                .collect();
            serde_json::to_vec(&json!({ "complaints": items })).unwrap()
        })
        .collect()
}

/// Sends every body with `concurrency` requests in flight; returns sorted latencies (ms) and accepted items.
pub(crate) async fn drive(
    url: &str,
    bearer: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<(Vec<f64>, usize)> {
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (http, next, bodies) = (http.clone(), next.clone(), bodies.clone());
        let (url, bearer) = (format!("{url}/v1/complaints"), bearer.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            let mut accepted = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let started = Instant::now();
                let answer = post_body(&http, &url, &bearer, body.clone()).await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                accepted += answer.accepted() as usize;
                answer.ok()?;
            }
            anyhow::Ok((latencies, accepted))
        }));
    }
    let mut all = vec![];
    let mut accepted = 0;
    for t in tasks {
        let (l, a) = t.await??;
        all.extend(l);
        accepted += a;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((all, accepted))
}

/// Every node `ch` stands for: itself on one node; on a cluster (a
/// two-shard local stack exports both settings) each node of
/// RICOCHET_CLICKHOUSE_NODES.
pub fn bench_nodes(ch: &ClickHouseConfig) -> Result<Vec<ClickHouseConfig>> {
    if ch.cluster.is_none() {
        return Ok(vec![ch.clone()]);
    }
    let nodes = std::env::var("RICOCHET_CLICKHOUSE_NODES")
        .context("RICOCHET_CLICKHOUSE_CLUSTER without RICOCHET_CLICKHOUSE_NODES")?;
    let nodes: Vec<&str> = nodes.split(',').collect();
    Ok(ch.with_nodes(&nodes))
}

/// Drops a bench's database from every node it was created on.
pub async fn drop_bench_database(ch: &ClickHouseConfig) -> Result<()> {
    for node in bench_nodes(ch)? {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", ch.database);
        node.server_client().query(&sql).execute().await?;
    }
    Ok(())
}

/// A bench's own database on the configured ClickHouse, migrated.
pub async fn bench_database(name: &str) -> Result<ClickHouseConfig> {
    let ch = ClickHouseConfig::from_env()?.with_database(name);
    let migrator = match &ch.cluster {
        None => Migrator::new(ch.clone())?,
        // On a cluster, the cluster form on every node.
        Some(cluster) => {
            let spec = ricochet_storage::cluster::ClusterSpec {
                cluster: cluster.clone(),
                coordinated: false,
            };
            Migrator::for_cluster(bench_nodes(&ch)?, &spec)?
        }
    };
    migrator
        .run()
        .await
        .context("migrating the bench database")?;
    Ok(ch)
}
