use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ricochet_registry::RegistryHandle;
use ricochet_scoring::api::{router, ApiState};
use ricochet_scoring::config::ScoringConfig;
use ricochet_scoring::dispatch::{Dispatcher, Outbox};
use ricochet_scoring::engine::Scorer;
use ricochet_scoring::listed::Publisher;
use ricochet_scoring::metrics::Metrics;
use ricochet_scoring::policy_file::PolicyFile;
use ricochet_scoring::streak::Streak;
use ricochet_scoring::{Level, Policy, Tier};
use ricochet_token::{Jwk, SigningKey};
use tokio::sync::watch;
use tracing::{info, warn};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    let args = ScoringConfig::parse();
    anyhow::ensure!(
        args.interval_secs.is_finite() && args.interval_secs >= 0.05,
        "--interval-secs must be at least 0.05"
    );
    let client = args.clickhouse.client();
    let (mut policy_file, policy) = match &args.policy {
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
        let path = args.signing_key.as_ref().expect("required by clap");
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let jwk: Jwk = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JWK", path.display()))?;
        let key = SigningKey::from_jwk(&jwk)
            .with_context(|| format!("loading the signing key {}", path.display()))?;
        let registry = RegistryHandle::open(&args.registry)
            .with_context(|| format!("loading registry {}", args.registry.display()))?;
        registry.watch(Duration::from_secs(2));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        info!(addr = %args.listen, "ESP API listening");
        let app = router(
            ApiState::new(
                client.clone(),
                registry.clone(),
                SigningKey::from_jwk(&jwk)?,
                metrics.clone(),
                args.interval_secs.ceil() as u64,
            )
            .with_policy(policy_rx)
            .with_board(board_rx)
            .with_clock_skew(args.clock_skew_secs),
        );
        let limits = args.server.limits();
        tokio::spawn(ricochet_http::serve(
            listener,
            app,
            limits,
            std::future::pending(),
        ));
        let producer = args.kafka.producer_config().create()?;
        let mut dispatcher = Dispatcher::new(
            client.clone(),
            registry,
            key,
            producer,
            args.penalties_topic.clone(),
        );
        dispatcher.feedback_topic = args.feedback_topic.clone();
        let dispatcher = Arc::new(dispatcher);
        let every = Duration::from_millis(args.feed_interval_ms);
        tokio::spawn(ricochet_scoring::feed::serve(
            client.clone(),
            dispatcher.clone(),
            metrics.clone(),
            every,
        ));
        let dm = metrics.clone();
        tokio::spawn(async move {
            let mut streak = Streak::default();
            loop {
                match dispatcher.run_once(ricochet_scoring::feed::unix_ms()).await {
                    Ok(r) => {
                        streak.ok();
                        ricochet_scoring::dispatch::count(&dm, Outbox::Penalties, &r);
                    }
                    Err(e) => streak.failed("penalty dispatch failed; retrying", &e),
                }
                tokio::time::sleep(streak.pause(Duration::from_secs(1))).await;
            }
        });
    }
    let mut scorer = Scorer::new(client.clone(), policy);
    scorer.full_every = args.full_every;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        if let Some(file) = policy_file.as_mut() {
            reload_policy(file, &mut scorer, &policy_tx);
        }
        let started = std::time::Instant::now();
        match scorer.run(now_ms).await {
            Ok(r) => {
                metrics.run_seconds.observe(started.elapsed().as_secs_f64());
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
                // A tier moves only with a penalty entry: a run without
                // changes leaves the list as it is, and copying every
                // standing would only find that out.
                if !board.is_ready() || !r.changes.is_empty() {
                    match board.publish(scorer.standings(), now_ms).await {
                        Ok(n) => metrics.listed.set(n as i64),
                        Err(e) => {
                            warn!(error = %e, "the provider list was not rebuilt; it stays as it was")
                        }
                    }
                }
                for b in &r.bursts {
                    warn!(esp = %b.esp, sender = %b.sender, campaign = %b.campaign, complaints = b.complaints, "campaign burst");
                }
                info!(full = r.full, senders = r.senders, groups = r.groups.values().sum::<usize>(), changes = r.changes.len(), bursts = r.bursts.len(), took = ?started.elapsed(), "scoring run")
            }
            Err(e) if args.once => return Err(e.into()),
            Err(e) => warn!(error = %e, "scoring run failed; retrying next interval"),
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(args.interval_secs)) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
