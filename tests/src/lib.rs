//! Helpers for tests that run against the local stack (`deploy/local/stack up`).
//!
//! Every test makes its own topic or database with a random name, so tests run
//! in parallel, can be repeated, and never see each other's data.

pub mod load;
pub mod local_clickhouse;

pub use local_clickhouse::{ClickHouseCluster, ClickHouseServer};
pub use ricochet_harness::rows::complaint_row;

use std::future::Future;
use std::time::{Duration, Instant};

use ricochet_kafka::KafkaConfig;
use ricochet_storage::ClickHouseConfig;

/// Kafka settings from the environment the stack exports (defaults: loopback).
pub fn kafka() -> KafkaConfig {
    KafkaConfig::from_env().expect("valid RICOCHET_KAFKA_* settings")
}

/// ClickHouse settings for a fresh database named after `prefix`.
pub fn clickhouse(prefix: &str) -> ClickHouseConfig {
    ClickHouseConfig::from_env()
        .expect("valid RICOCHET_CLICKHOUSE_* settings")
        .with_database(&unique(prefix).replace('-', "_"))
}

/// `prefix` plus 64 random bits, for topic, group and database names.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    format!("{prefix}-{:016x}", u64::from_le_bytes(bytes))
}

/// Polls `check` until it returns `Some`, failing the test with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; is the stack up? (deploy/local/stack status)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `topic` from the beginning with a fresh consumer group until `expected`
/// messages arrived (failing after `timeout`); returns `(key, payload)` pairs.
pub async fn consume_exactly(
    config: &KafkaConfig,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<(String, Vec<u8>)> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = config
        .consumer_config(&unique("it-reader"))
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = vec![];
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} messages on {topic} within {timeout:?}",
            out.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            out.push((key, m.payload().unwrap_or_default().to_vec()));
        }
    }
    let total = high_watermark_total(config, topic);
    assert_eq!(
        total as usize, expected,
        "{topic} holds {total} messages, expected exactly {expected}"
    );
    out
}

/// Sum of the high watermarks of every partition of `topic`: how many messages it holds.
pub fn high_watermark_total(config: &KafkaConfig, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = config.client_config().create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// A broker of the test's own (tansu, sqlite storage in a temporary directory)
/// on a free loopback port, so a test may stop and restart it without
/// disturbing the shared stack.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub async fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Broker {
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        b.restart().await;
        b
    }

    /// Kafka settings pointing at this broker.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: format!("127.0.0.1:{}", self.port),
            partitions: 3,
            replication: 1,
            idempotence: true,
        }
    }

    /// Kills the broker at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub async fn restart(&mut self) {
        self.kill();
        let bin = std::env::var("RICOCHET_TANSU_BIN")
            .expect("RICOCHET_TANSU_BIN (exported by deploy/local/stack env)");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(bin)
            .args([
                "broker",
                "--storage-engine",
                "sqlite://tansu.db",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let port = self.port;
        wait_for(
            "the test broker to listen",
            Duration::from_secs(30),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Inserts rows into `table` of `config`'s database.
pub async fn insert_rows<T>(config: &ClickHouseConfig, table: &str, rows: &[T])
where
    T: for<'a> clickhouse::Row<Value<'a> = T> + clickhouse::RowWrite,
{
    let mut insert = config.client().insert::<T>(table).await.expect("insert");
    for r in rows {
        insert.write(r).await.expect("write row");
    }
    insert.end().await.expect("insert acknowledged");
}

/// Drops a test's own database (the end of every ClickHouse test).
pub async fn drop_database(ch: &ClickHouseConfig) {
    ch.server_client()
        .query(&format!("DROP DATABASE IF EXISTS `{}`", ch.database))
        .execute()
        .await
        .unwrap();
}

/// Polls `url` until it answers 2xx, failing the test with `what` at the deadline.
pub async fn wait_for_http_ok(what: &str, url: &str, timeout: Duration) {
    wait_for(what, timeout, || async move {
        reqwest::get(url)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

/// A binary of the workspace built beside this test (`target/<profile>/NAME`;
/// `cargo test --workspace` builds every binary first).
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test runs from target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} not found; build it with `cargo build --workspace`",
        bin.display()
    );
    bin
}
