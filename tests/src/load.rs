//! Steady load for the fault and scale-out suites: release binaries
//! started as services, a provider that resends each request until it gets
//! a 200 (through one or more ingest processes in turn), and the ledger of
//! what the providers were told, to compare with what ClickHouse holds.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricochet_harness::ingest::{Answer, IngestClient};
use ricochet_harness::process::ServiceProcess;
use serde_json::Value;

use crate::wait_for;

/// Starts `ricochet-<name>` from `bin_dir` and waits until it is ready.
pub async fn service(
    bin_dir: &Path,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> ServiceProcess {
    let bin = bin_dir.join(format!("ricochet-{name}"));
    let mut process = ServiceProcess::spawn(&bin, "--listen", args, envs).unwrap();
    process.wait_ready().await.unwrap();
    process
}

/// Starts ingest with `registry`, no rate limit to speak of, and a short
/// Kafka timeout (so a request fails fast while the broker is away).
pub async fn ingest(bin_dir: &Path, registry: &str, envs: &[(&str, &str)]) -> ServiceProcess {
    let args = [
        "--registry",
        registry,
        "--rate-per-sec",
        "100000",
        "--burst",
        "100000",
        "--kafka-timeout-ms",
        "3000",
    ];
    service(bin_dir, "ingest", &args, envs).await
}

/// Starts a loader with static member id `id`, short batches and backoff,
/// and a consumer replaced after 20 s of joining.
pub async fn loader(bin_dir: &Path, id: &str, envs: &[(&str, &str)]) -> ServiceProcess {
    let args = [
        "--instance-id",
        id,
        "--batch-ms",
        "200",
        "--max-backoff-ms",
        "1000",
        "--rejoin-after-secs",
        "20",
    ];
    service(bin_dir, "loader", &args, envs).await
}

/// Starts scoring with `registry` and Ricochet's key `key`, a run a second.
pub async fn scoring(
    bin_dir: &Path,
    registry: &str,
    key: &str,
    envs: &[(&str, &str)],
) -> ServiceProcess {
    let args = [
        "--registry",
        registry,
        "--signing-key",
        key,
        "--interval-secs",
        "1",
    ];
    service(bin_dir, "scoring", &args, envs).await
}

/// `token` forged: its signature's last character changed.
pub fn forge(token: &str) -> String {
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    format!("{}{last}", &token[..token.len() - 1])
}

/// One request: the body, and the jti of its forged item (whose genuine
/// twin is never sent, so it must never be counted).
pub struct Batch {
    /// `{"complaints": [...]}`.
    pub body: Value,
    /// The forged item's jti.
    pub forged_jti: String,
}

/// What the providers were told.
#[derive(Default)]
pub struct Ledger {
    /// jtis with an `accepted` verdict in a 200.
    pub accepted: HashSet<String>,
    /// Forged items accepted (must stay 0).
    pub forged_accepted: usize,
    /// Requests answered 200.
    pub requests_ok: usize,
    /// Requests that failed (and were sent again).
    pub requests_failed: usize,
    /// Batches done.
    pub done: usize,
}

/// Sends every batch at `per_sec` requests a second, through `ingests` in
/// turn, resending a batch (to the next one) until it gets a 200, and
/// records the verdicts in `ledger`.
pub async fn drive(
    ingests: Vec<IngestClient>,
    batches: Vec<Batch>,
    ledger: Arc<Mutex<Ledger>>,
    per_sec: u64,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / per_sec));
    let mut turn = 0;
    for batch in batches {
        loop {
            tick.tick().await;
            turn += 1;
            let ingest = &ingests[turn % ingests.len()];
            let request = ingest.post_json("/v1/complaints", &batch.body);
            let answer = tokio::time::timeout(Duration::from_secs(10), request).await;
            match answer {
                Ok(Ok(Answer { status, body })) if status.is_success() => {
                    ledger.lock().unwrap().record(&body, &batch.forged_jti);
                }
                _ => {
                    ledger.lock().unwrap().requests_failed += 1;
                    continue;
                }
            }
            break;
        }
    }
}

impl Ledger {
    fn record(&mut self, body: &Value, forged_jti: &str) {
        self.requests_ok += 1;
        for r in body["results"].as_array().unwrap() {
            if r["verdict"] == "accepted" {
                let jti = r["jti"].as_str().unwrap();
                if jti == forged_jti {
                    self.forged_accepted += 1;
                } else {
                    self.accepted.insert(jti.to_string());
                }
            }
        }
        self.done += 1;
    }
}

/// Waits until `by` more batches are done than now.
pub async fn progressed(ledger: &Arc<Mutex<Ledger>>, by: usize) {
    let from = ledger.lock().unwrap().done;
    wait_for("the load to go on", Duration::from_secs(120), || {
        let ledger = ledger.clone();
        async move { (ledger.lock().unwrap().done >= from + by).then_some(()) }
    })
    .await
}

/// Waits until ClickHouse holds `n` distinct complaints, printing progress
/// per Kafka partition every 10 s (tagged `who`): if the wait times out, the
/// log shows whether loading stalled on one partition or on all.
pub async fn wait_loaded(client: &clickhouse::Client, n: u64, who: &str) {
    let last_report = Arc::new(Mutex::new(std::time::Instant::now()));
    wait_for(
        "every accepted complaint in ClickHouse",
        Duration::from_secs(240),
        || {
            let (client, last_report) = (client.clone(), last_report.clone());
            async move {
                let sql = "SELECT uniqExact(jti) FROM complaints";
                let loaded: u64 = client.query(sql).fetch_one().await.ok()?;
                let due = last_report.lock().unwrap().elapsed() >= Duration::from_secs(10);
                if loaded < n && due {
                    *last_report.lock().unwrap() = std::time::Instant::now();
                    let sql = "SELECT kafka_partition, count(), max(kafka_offset) FROM complaints
                               GROUP BY kafka_partition ORDER BY kafka_partition";
                    let partitions: Vec<(u32, u64, u64)> =
                        client.query(sql).fetch_all().await.unwrap_or_default();
                    eprintln!(
                        "{who}: {loaded} of {n} accepted complaints in ClickHouse; \
                         (partition, rows, last offset): {partitions:?}"
                    );
                }
                (loaded >= n).then_some(())
            }
        },
    )
    .await;
}

/// Every jti in `complaints`.
pub async fn stored_jtis(client: &clickhouse::Client) -> HashSet<String> {
    let sql = "SELECT DISTINCT jti FROM complaints";
    let jtis: Vec<String> = client.query(sql).fetch_all().await.unwrap();
    jtis.into_iter().collect()
}
