//! The scoring service's wiring, as `ricochet-scoring` runs it: the ESP
//! and provider API, the penalty dispatch and the complaint feed beside the
//! scoring loop, which runs every interval, reloads the policy file when
//! it changes, updates the metrics and republishes the provider list.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ricochet_registry::RegistryHandle;
use ricochet_token::SigningKey;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{router, ApiState};
use crate::config::ScoringConfig;
use crate::dispatch::{Dispatcher, Outbox};
use crate::engine::{RunReport, Scorer};
use crate::listed::{Board, Publisher};
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::policy_file::PolicyFile;
use crate::streak::Streak;
use crate::{Level, Policy, Tier};

/// Runs scoring until SIGTERM or Ctrl-C (or after one run with `--once`).
pub async fn run(args: ScoringConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.interval_secs.is_finite() && args.interval_secs >= 0.05,
        "--interval-secs must be at least 0.05"
    );
    let part = Partition::new(args.instance, args.instances)?;
    info!(
        instance = args.instance,
        instances = args.instances,
        "scoring partition"
    );
    let client = args.clickhouse.client();
    let (policy_file, policy) = match &args.policy {
        Some(path) => {
            let (file, policy) = PolicyFile::open(path).context("loading the scoring policy")?;
            info!(path = %path.display(), "scoring policy loaded");
            (Some(file), policy)
        }
        None => (None, Policy::default()),
    };
    let (policy_tx, policy_rx) = watch::channel(Arc::new(policy.clone()));
    let metrics = Metrics::new();
    let (board, board_rx) = Publisher::new(client.clone());
    if !args.once {
        start_beside(&args, part, &metrics, (policy_rx, board_rx)).await?;
    }
    let mut scorer = Scorer::new(client, policy).partitioned(part);
    scorer.full_every = args.full_every;
    let mut looping = Loop {
        args: &args,
        scorer,
        policy_file,
        policy_tx,
        metrics,
        board,
    };
    looping.run().await
}

/// Starts what runs beside the scoring loop: the API, the complaint feed
/// and the penalty dispatch.
async fn start_beside(
    args: &ScoringConfig,
    part: Partition,
    metrics: &Metrics,
    (policy, board): (watch::Receiver<Arc<Policy>>, watch::Receiver<Arc<Board>>),
) -> anyhow::Result<()> {
    let path = args.signing_key.as_ref().expect("required by clap");
    let client = args.clickhouse.client();
    let registry = RegistryHandle::open(&args.registry)
        .with_context(|| format!("loading registry {}", args.registry.display()))?;
    registry.watch(Duration::from_secs(2));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    info!(addr = %args.listen, "ESP API listening");
    let state = ApiState::new(
        client.clone(),
        registry.clone(),
        SigningKey::from_file(path)?,
        metrics.clone(),
        args.interval_secs.ceil() as u64,
    )
    .with_policy(policy)
    .with_board(board)
    .with_clock_skew(args.clock_skew_secs);
    let limits = args.server.limits();
    tokio::spawn(ricochet_http::serve(
        listener,
        router(state),
        limits,
        std::future::pending(),
    ));
    let producer = args.kafka.producer_config().create()?;
    let mut dispatcher = Dispatcher::new(
        client.clone(),
        registry,
        SigningKey::from_file(path)?,
        producer,
        args.penalties_topic.clone(),
    );
    dispatcher.feedback_topic = args.feedback_topic.clone();
    dispatcher.part = part;
    let dispatcher = Arc::new(dispatcher);
    let every = Duration::from_millis(args.feed_interval_ms);
    tokio::spawn(crate::feed::serve(
        client,
        dispatcher.clone(),
        metrics.clone(),
        every,
    ));
    tokio::spawn(dispatch_penalties(dispatcher, metrics.clone()));
    Ok(())
}

/// Sends new penalty log entries to Kafka and the webhooks, every second.
async fn dispatch_penalties(dispatcher: Arc<Dispatcher>, metrics: Metrics) {
    let mut streak = Streak::default();
    loop {
        match dispatcher.run_once(crate::feed::unix_ms()).await {
            Ok(r) => {
                streak.ok();
                crate::dispatch::count(&metrics, Outbox::Penalties, &r);
            }
            Err(e) => streak.failed("penalty dispatch failed; retrying", &e),
        }
        tokio::time::sleep(streak.pause(Duration::from_secs(1))).await;
    }
}

/// The scoring loop and what it keeps between runs.
struct Loop<'a> {
    args: &'a ScoringConfig,
    scorer: Scorer,
    policy_file: Option<PolicyFile>,
    policy_tx: watch::Sender<Arc<Policy>>,
    metrics: Metrics,
    board: Publisher,
}

impl Loop<'_> {
    /// Runs every interval until a signal (or once).
    async fn run(&mut self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let now_ms = crate::feed::unix_ms();
            if let Some(file) = self.policy_file.as_mut() {
                reload_policy(file, &mut self.scorer, &self.policy_tx);
            }
            let started = std::time::Instant::now();
            match self.scorer.run(now_ms).await {
                Ok(r) => {
                    record(&self.metrics, &r, started.elapsed(), now_ms);
                    self.publish(&r, now_ms).await;
                    for b in &r.bursts {
                        warn!(esp = %b.esp, sender = %b.sender, campaign = %b.campaign, complaints = b.complaints, "campaign burst");
                    }
                    info!(full = r.full, senders = r.senders, groups = r.groups.values().sum::<usize>(), changes = r.changes.len(), bursts = r.bursts.len(), took = ?started.elapsed(), "scoring run")
                }
                Err(e) if self.args.once => return Err(e.into()),
                Err(e) => warn!(error = %e, "scoring run failed; retrying next interval"),
            }
            if self.args.once {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(self.args.interval_secs)) => {}
                _ = term.recv() => return Ok(()),
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }

    /// Rebuilds the provider list after a run that changed a tier (a tier
    /// moves only with a penalty entry), or while there is none yet. A
    /// partitioned instance knows only its own ESPs' standings: it reads
    /// every instance's from the standing tables, after each run.
    async fn publish(&self, r: &RunReport, now_ms: i64) {
        let split = self.scorer.partition().is_split();
        if self.board.is_ready() && r.changes.is_empty() && !split {
            return;
        }
        let standings = match split {
            false => Ok(self.scorer.standings()),
            true => crate::store::standing::all_in_force(self.board.client()).await,
        };
        let published = match standings {
            Ok(standings) => self.board.publish(standings, now_ms).await,
            Err(e) => Err(e),
        };
        match published {
            Ok(n) => self.metrics.listed.set(n as i64),
            Err(e) => warn!(error = %e, "the provider list was not rebuilt; it stays as it was"),
        }
    }
}

/// Puts a changed policy file in force (the next run is a full one), or
/// says why it is refused and keeps the policy in force.
fn reload_policy(file: &mut PolicyFile, scorer: &mut Scorer, tx: &watch::Sender<Arc<Policy>>) {
    match file.changed() {
        None => {}
        Some(Ok(policy)) if &policy == scorer.policy() => {}
        Some(Ok(policy)) => {
            info!(path = %file.path().display(), "scoring policy changed; the next run rescores everything under it");
            tx.send_replace(Arc::new(policy.clone()));
            scorer.set_policy(policy);
        }
        Some(Err(e)) => {
            warn!(error = %e, "scoring policy file changed but is invalid; keeping the policy in force")
        }
    }
}

/// A successful run's figures in the metrics.
fn record(metrics: &Metrics, r: &RunReport, took: Duration, now_ms: i64) {
    metrics.run_seconds.observe(took.as_secs_f64());
    metrics.last_success.set(now_ms / 1000);
    for t in Tier::ALL {
        let n = r.per_tier.get(&t).copied().unwrap_or(0);
        metrics
            .senders
            .with_label_values(&[t.as_str()])
            .set(n as i64);
    }
    for level in [Level::Esp, Level::Campaign, Level::Domain] {
        for t in Tier::ALL {
            let n = r.group_tiers.get(&(level, t)).copied().unwrap_or(0);
            metrics
                .groups
                .with_label_values(&[level.as_str(), t.as_str()])
                .set(n as i64);
        }
    }
    for c in &r.changes {
        metrics
            .changes
            .with_label_values(&[c.to_tier.as_str()])
            .inc();
    }
    metrics.bursts.set(r.bursts.len() as i64);
}
