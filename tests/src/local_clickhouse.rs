//! ClickHouse servers and clusters of a test's own (chdb-server on free
//! loopback ports, data in temporary directories), which a test may stop,
//! restart and watch for crashes.

use std::time::Duration;

use ricochet_storage::ClickHouseConfig;
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
        // The server's own output goes to a file beside its data, so a
        // server that stops by itself can tell why (see `exited`).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server's log file");
        let child = command
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log)
            .spawn()
            .expect("start chdb-server");
        self.child = Some(child);
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("chdb-server.log")
    }

    /// If the server exited although nobody stopped it: how (exit status
    /// and the end of its output). The server then counts as stopped.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        Some(format!(
            "ClickHouse on HTTP {} exited ({status}); its last output:\n{tail}",
            self.port
        ))
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

    /// Restarts every node that exited although nobody stopped it, as a
    /// supervisor would, and says so on stderr. Returns how many it restarted.
    pub async fn restart_exited(&mut self) -> usize {
        let mut restarted = 0;
        for i in 0..self.nodes.len() {
            if let Some(why) = self.nodes[i].exited() {
                eprintln!("cluster node {}: {why}\nrestarting it", i + 1);
                self.restart_node(i).await;
                restarted += 1;
            }
        }
        restarted
    }

    /// Settings of every node (database `ricochet`).
    pub fn configs(&self) -> Vec<ClickHouseConfig> {
        self.nodes.iter().map(ClickHouseServer::config).collect()
    }
}
