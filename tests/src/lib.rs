//! Helpers for tests that run against the local stack (`deploy/local/stack up`).
//!
//! Every test makes its own topic or database with a random name, so tests run
//! in parallel, can be repeated, and never see each other's data.

pub mod load;

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

/// A `complaints` row for tests that write ClickHouse directly: `code` from
/// `provider` about `esp/sender`, reported (and received) at `at_ms`, with a
/// token issued an hour earlier and valid a day.
pub fn complaint_row(
    jti: &str,
    esp: &str,
    sender: &str,
    provider: &str,
    code: &str,
    at_ms: i64,
) -> ricochet_storage::ComplaintRow {
    ricochet_storage::ComplaintRow {
        jti: jti.into(),
        esp: esp.into(),
        sender: sender.into(),
        provider: provider.into(),
        code: code.into(),
        nature: "marketing".into(),
        campaign: String::new(),
        recipient_domain: "mail.example".into(),
        from_domain: String::new(),
        reporter: String::new(),
        rcb: String::new(),
        recipient_proven: false,
        token_iat: (at_ms / 1000 - 3600) as u32,
        token_exp: (at_ms / 1000 + 86_400) as u32,
        reported_at: at_ms,
        received_at: at_ms,
        kafka_partition: 0,
        kafka_offset: 0,
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

/// A ClickHouse server of the test's own (chdb-server on free loopback ports,
/// data in a temporary directory), which the test may stop and start.
pub struct ClickHouseServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
    /// A server configuration file to read as well (a cluster's).
    config_file: Option<std::path::PathBuf>,
}

impl ClickHouseServer {
    /// Starts a server and waits until it answers.
    pub async fn start() -> ClickHouseServer {
        let mut c = ClickHouseServer {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            config_file: None,
        };
        c.restart(free_port()).await;
        c
    }

    /// Starts a server on `tcp_port` that also reads `config_file`.
    pub async fn start_with_config(config_file: std::path::PathBuf, tcp_port: u16) -> Self {
        let mut c = ClickHouseServer {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            config_file: Some(config_file),
        };
        c.restart(tcp_port).await;
        c
    }

    /// Settings pointing at this server (database `ricochet`).
    pub fn config(&self) -> ClickHouseConfig {
        ClickHouseConfig {
            url: format!("http://127.0.0.1:{}", self.port),
            database: "ricochet".into(),
            user: "default".into(),
            password: String::new(),
            compression: ricochet_storage::WireCompression::Lz4,
            cluster: self
                .config_file
                .as_ref()
                .map(|_| ClickHouseCluster::NAME.to_string()),
        }
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same HTTP port and data, and waits
    /// until both its HTTP and its TCP port (the one other shards query)
    /// answer. A server that exits meanwhile (its TCP port not yet free
    /// again after a stop) is started again, up to five times.
    pub async fn restart(&mut self, tcp_port: u16) {
        for attempt in 1..=5 {
            self.stop();
            self.spawn(tcp_port);
            if self.serving(tcp_port).await {
                return;
            }
            eprintln!(
                "test ClickHouse exited while starting (attempt {attempt}); starting it again"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!(
            "the test ClickHouse did not stay up on HTTP {} and TCP {tcp_port}",
            self.port
        );
    }

    fn spawn(&mut self, tcp_port: u16) {
        let server = std::env::var("RICOCHET_CHDB_SERVER")
            .expect("RICOCHET_CHDB_SERVER (exported by deploy/local/stack env)");
        let lib = std::env::var("RICOCHET_CHDB_LIB").expect("RICOCHET_CHDB_LIB");
        let mut command = std::process::Command::new(server);
        command.args([
            "--lib",
            &lib,
            "--path",
            &self.dir.path().display().to_string(),
            "--http-port",
            &self.port.to_string(),
            "--tcp-port",
            &tcp_port.to_string(),
        ]);
        if let Some(file) = &self.config_file {
            command.arg("--config-file").arg(file);
        }
        // RICOCHET_TEST_CLICKHOUSE_LOG=1 shows the servers' own output
        // (why one stopped), interleaved with the test's.
        let output = || match std::env::var_os("RICOCHET_TEST_CLICKHOUSE_LOG") {
            Some(_) => std::process::Stdio::inherit(),
            None => std::process::Stdio::null(),
        };
        let child = command
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("start chdb-server");
        self.child = Some(child);
    }

    /// Whether the server came to answer on both ports (false: it exited).
    async fn serving(&mut self, tcp_port: u16) -> bool {
        let url = format!("http://127.0.0.1:{}/?query=SELECT%201", self.port);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let exited =
                (self.child.as_mut()).is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                return false;
            }
            let http = reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success());
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
                .await
                .is_ok();
            if http && tcp {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the test ClickHouse did not answer on HTTP {} within 60 s",
            self.port
        );
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free at the time of the call (the harness's, failing the test).
fn free_port() -> u16 {
    ricochet_harness::process::free_port().expect("a free loopback port")
}

/// A local ClickHouse cluster of the test's own: `shards` servers (one
/// replica each), every one with the `remote_servers` entry `ricochet`
/// naming them all. No coordination service: migrate it node by node.
pub struct ClickHouseCluster {
    /// The servers, shard 1 first.
    pub nodes: Vec<ClickHouseServer>,
    /// Each server's TCP port, as `remote_servers` names it.
    tcp_ports: Vec<u16>,
    _config: tempfile::TempDir,
}

impl ClickHouseCluster {
    /// The cluster's name in `remote_servers`.
    pub const NAME: &'static str = "ricochet";

    /// Starts the servers and waits until each answers.
    pub async fn start(shards: usize) -> ClickHouseCluster {
        let tcp_ports: Vec<u16> = (0..shards).map(|_| free_port()).collect();
        let replicas: String = tcp_ports
            .iter()
            .map(|p| {
                format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
            })
            .collect();
        let config = tempfile::tempdir().unwrap();
        let file = config.path().join("cluster.xml");
        let xml = format!(
            "<clickhouse><remote_servers><{n}>{replicas}</{n}></remote_servers></clickhouse>",
            n = Self::NAME
        );
        std::fs::write(&file, xml).unwrap();
        let mut nodes = Vec::new();
        for port in &tcp_ports {
            nodes.push(ClickHouseServer::start_with_config(file.clone(), *port).await);
        }
        ClickHouseCluster {
            nodes,
            tcp_ports,
            _config: config,
        }
    }

    /// Starts node `i` again (after [`ClickHouseServer::stop`]) on the
    /// ports and data it had, so the cluster finds it where it was.
    pub async fn restart_node(&mut self, i: usize) {
        self.nodes[i].restart(self.tcp_ports[i]).await;
    }

    /// Settings of every node (database `ricochet`).
    pub fn configs(&self) -> Vec<ClickHouseConfig> {
        self.nodes.iter().map(ClickHouseServer::config).collect()
    }
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
