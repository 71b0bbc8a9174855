//! Ricochet services run as child processes by the benches and the fault
//! suite, each on a free loopback port: waited on until ready, stopped with
//! SIGTERM, killed with SIGKILL as a crash would, started again on the same
//! port, and killed if dropped running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The service binary `name`: `given`, else the one next to this executable;
/// an error telling how to build it when it is missing.
pub fn service_binary(name: &str, given: Option<PathBuf>) -> Result<PathBuf> {
    let bin = match given {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name(name),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found; build it with `cargo build --release -p {name}`",
        bin.display()
    );
    Ok(bin)
}

/// Starts the milter `bin` in `mode` (`sign`, `check`) with `args`, on a
/// free milter port and its `/readyz` on another; waits until it is ready.
/// Returns it with its milter address.
pub async fn start_milter(
    bin: &Path,
    mode: &str,
    args: &[&str],
) -> Result<(ServiceProcess, std::net::SocketAddr)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let listen = addr.to_string();
    let mut argv = vec!["--listen", listen.as_str()];
    argv.extend_from_slice(args);
    let mut process = ServiceProcess::spawn_mode(bin, &[mode], "--ops-listen", &argv, &[])?;
    process.wait_ready().await?;
    Ok((process, addr))
}

/// A loopback port free at the time of the call.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A service binary, its command line and the base URL it listens on.
pub struct ServiceProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    name: String,
    command: (PathBuf, Vec<String>, Vec<(String, String)>),
}

impl ServiceProcess {
    /// Starts `bin` with `listen_flag 127.0.0.1:<free port>`, `args` and `envs`
    /// (warnings-only logging unless `envs` says otherwise).
    pub fn spawn(
        bin: &Path,
        listen_flag: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        Self::spawn_mode(bin, &[], listen_flag, args, envs)
    }

    /// [`spawn`](Self::spawn) for a binary whose subcommand (`mode`, e.g.
    /// `["check"]`) comes first.
    pub fn spawn_mode(
        bin: &Path,
        mode: &[&str],
        listen_flag: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        let port = free_port()?;
        let mut argv: Vec<String> = mode.iter().map(|m| m.to_string()).collect();
        argv.extend([listen_flag.to_string(), format!("127.0.0.1:{port}")]);
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut env = vec![("RICOCHET_LOG".to_string(), "warn".to_string())];
        env.extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut process = ServiceProcess {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            name: bin
                .file_name()
                .map_or("service".into(), |n| n.to_string_lossy().into_owned()),
            command: (bin.to_path_buf(), argv, env),
        };
        process.start()?;
        Ok(process)
    }

    /// Starts the process again with the same command line and port
    /// (after [`kill9`](Self::kill9) or [`stop`](Self::stop)).
    pub fn start(&mut self) -> Result<()> {
        let (bin, args, envs) = &self.command;
        let child = Command::new(bin)
            .args(args)
            .envs(envs.iter().cloned())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/readyz` answers 2xx (at most 90 s).
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child()?.try_wait()? {
                bail!("{} exited during start-up: {status}", self.name);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} not ready within 90 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn child(&mut self) -> Result<&mut Child> {
        self.child
            .as_mut()
            .with_context(|| format!("{} is not running", self.name))
    }

    fn pid(&self) -> Result<u32> {
        let child = self.child.as_ref().context("not running")?;
        Ok(child.id())
    }

    /// User plus system CPU time of the process so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?))?;
        let after_name = &stat[stat.rfind(')').context("stat format")? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .context("VmHWM missing")?
            .parse()?;
        Ok(kb / 1024.0)
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain signal to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
