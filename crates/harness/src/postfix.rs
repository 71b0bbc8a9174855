//! Postfix instances of their own, on loopback, for the mail-flow tests
//! and benchmarks: each has its own configuration, queue and data
//! directories under one folder, an `smtpd` on a loopback port, and either
//! relays everything to another port (the ESP side) or delivers the domains
//! it is given into one maildir (the provider side). Needs Debian's
//! `postfix` package and root (Postfix's master runs as root and drops to
//! the `postfix` user); `deploy/local/stack install` installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Owner of delivered mail: `nobody`, above Postfix's `virtual_minimum_uid`.
const MAIL_UID: u32 = 65534;

/// What an instance does with the mail it takes.
#[derive(Debug, Clone)]
pub enum Route {
    /// Relay everything to this loopback port (the ESP side).
    RelayTo(u16),
    /// Deliver these domains into the instance's maildir (the provider side).
    Deliver(Vec<String>),
    /// Take every message and throw it away after queueing (benchmarks:
    /// what smtpd, cleanup and the milters cost, without a delivery).
    Discard,
}

/// An instance's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A short name (host name and log tag).
    pub name: String,
    /// The smtpd port on 127.0.0.1.
    pub port: u16,
    /// Relay or deliver.
    pub route: Route,
    /// A milter for smtpd (`inet:` address), if any.
    pub milter: Option<SocketAddr>,
}

/// A running Postfix instance; stopped when dropped.
pub struct Postfix {
    dir: PathBuf,
    /// Where smtpd listens.
    pub smtp: SocketAddr,
}

impl Postfix {
    /// Writes the instance's files under `root/<name>` and starts it;
    /// returns once smtpd answers.
    pub async fn start(root: &Path, settings: &Settings) -> Result<Postfix> {
        which_postfix()?;
        let dir = root.join(&settings.name);
        for sub in ["conf", "queue", "data", "mail/inbox"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("conf/master.cf"), master_cf(settings.port))?;
        std::fs::write(dir.join("conf/main.cf"), main_cf(&dir, settings))?;
        chown(&dir.join("data"), "postfix")?;
        chown(&dir.join("mail"), &MAIL_UID.to_string())?;
        let instance = Postfix {
            smtp: SocketAddr::from(([127, 0, 0, 1], settings.port)),
            dir,
        };
        instance.postfix(&["check"])?;
        instance.postfix(&["start"])?;
        instance.wait_listening().await?;
        Ok(instance)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("conf")
    }

    fn postfix(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("postfix")
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .context("running postfix")?;
        if !out.status.success() {
            bail!(
                "postfix {args:?} failed: {}{}\n(log: {})",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(())
    }

    async fn wait_listening(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(self.smtp).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "postfix {} not listening within 30 s: {}",
                    self.smtp,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Changes main.cf settings (`name=value`) and reloads.
    pub fn set(&self, settings: &[&str]) -> Result<()> {
        let out = Command::new("postconf")
            .arg("-c")
            .arg(self.conf())
            .arg("-e")
            .args(settings)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "postconf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.postfix(&["reload"])
    }

    /// The maildir new mail arrives in.
    pub fn inbox(&self) -> PathBuf {
        self.dir.join("mail/inbox/new")
    }

    /// The messages delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<PathBuf> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(self.inbox())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    /// Waits until at least `n` messages are delivered (at most `timeout`).
    pub async fn wait_delivered(&self, n: usize, timeout: Duration) -> Result<Vec<PathBuf>> {
        let deadline = Instant::now() + timeout;
        loop {
            let files = self.delivered();
            if files.len() >= n {
                return Ok(files);
            }
            if Instant::now() > deadline {
                bail!("{} of {n} messages delivered: {}", files.len(), self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many messages are in the hold queue (quarantined by a milter).
    pub fn held(&self) -> usize {
        let mut count = 0;
        let mut todo = vec![self.dir.join("queue/hold")];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => todo.push(entry.path()),
                    Ok(_) => count += 1,
                    Err(_) => {}
                }
            }
        }
        count
    }

    /// The mail log's last lines.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stops the instance (also done on drop).
    pub fn stop(&self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which_postfix() -> Result<()> {
    let ok = Command::new("postconf")
        .arg("-d")
        .arg("mail_version")
        .output()
        .is_ok_and(|o| o.status.success());
    anyhow::ensure!(
        ok,
        "Postfix is not installed: run `deploy/local/stack install`"
    );
    anyhow::ensure!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "Postfix instances need root (its master process starts as root)"
    );
    Ok(())
}

fn chown(path: &Path, owner: &str) -> Result<()> {
    let out = Command::new("chown")
        .arg("-R")
        .arg(owner)
        .arg(path)
        .output()?;
    anyhow::ensure!(out.status.success(), "chown {owner} {}", path.display());
    Ok(())
}

/// The services an instance needs, none chrooted (the instance's
/// directories are not set up as chroots).
fn master_cf(port: u16) -> String {
    let services = [
        "pickup    unix  n - n 60 1 pickup",
        "cleanup   unix  n - n - 0 cleanup",
        "qmgr      unix  n - n 300 1 qmgr",
        "rewrite   unix  - - n - - trivial-rewrite",
        "bounce    unix  - - n - 0 bounce",
        "defer     unix  - - n - 0 bounce",
        "trace     unix  - - n - 0 bounce",
        "verify    unix  - - n - 1 verify",
        "flush     unix  n - n 1000? 0 flush",
        "proxymap  unix  - - n - - proxymap",
        "smtp      unix  - - n - - smtp",
        "relay     unix  - - n - - smtp",
        "showq     unix  n - n - - showq",
        "error     unix  - - n - - error",
        "retry     unix  - - n - - error",
        "discard   unix  - - n - - discard",
        "virtual   unix  - n n - - virtual",
        "anvil     unix  - - n - 1 anvil",
        "scache    unix  - - n - 1 scache",
        "postlog   unix-dgram n - n - 1 postlogd",
    ];
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
        services.join("\n")
    )
}

fn main_cf(dir: &Path, s: &Settings) -> String {
    let d = dir.display();
    let mut cf = format!(
        "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {name}.ricochet.test
mydomain = ricochet.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
syslog_name = postfix-{name}
disable_dns_lookups = yes
smtp_dns_support_level = disabled
biff = no
",
        name = s.name
    );
    match &s.route {
        Route::RelayTo(port) => {
            cf += &format!("relayhost = [127.0.0.1]:{port}\nsmtp_host_lookup = native\n");
        }
        Route::Discard => cf += "default_transport = discard:benchmark\n",
        Route::Deliver(domains) => {
            cf += &format!(
                "virtual_mailbox_domains = {}\nvirtual_mailbox_base = {d}/mail\n\
                 virtual_mailbox_maps = static:inbox/\nvirtual_uid_maps = static:{MAIL_UID}\n\
                 virtual_gid_maps = static:{MAIL_UID}\nvirtual_minimum_uid = 100\n",
                domains.join(", ")
            );
        }
    }
    if let Some(m) = s.milter {
        // A milter that is down must not stop mail: accept without it.
        cf += &format!("smtpd_milters = inet:{m}\nmilter_default_action = accept\n");
    }
    cf
}
