//! Ricochet services started as child processes by the benches, each on a
//! free loopback port, stopped with SIGTERM (killed if dropped running).

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

/// A running service binary and the base URL it listens on.
pub struct ServiceProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    name: String,
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(bin);
        cmd.arg(listen_flag)
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("RICOCHET_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(ServiceProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            name: bin
                .file_name()
                .map_or("service".into(), |n| n.to_string_lossy().into_owned()),
        })
    }

    /// Waits until `/readyz` answers 2xx (at most 60 s).
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited during start-up: {status}", self.name);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} not ready within 60 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// User plus system CPU time of the process so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let after_name = &stat[stat.rfind(')').context("stat format")? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
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
        // SAFETY: plain signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
