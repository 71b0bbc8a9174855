//! Building a mode from its settings: every file is read and checked
//! before the milter listens, so a bad setting stops the start, not mail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ricochet_policy::PolicyStore;
use ricochet_registry::RegistryHandle;
use ricochet_token::send_log::SendLog;
use ricochet_token::SigningKey;

use crate::check::Checker;
use crate::config::{CheckConfig, SignConfig};
use crate::deliveries::{DeliveryCounts, Reporter};
use crate::metrics::MilterMetrics;
use crate::senders::SenderMapFile;
use crate::sign::Signer;

/// How often the registry and policy files are checked for changes.
const WATCH: Duration = Duration::from_secs(2);

fn policies(dir: Option<&std::path::Path>) -> Result<Option<PolicyStore>> {
    let Some(dir) = dir else { return Ok(None) };
    let store = PolicyStore::open(dir).context("recipient policies")?;
    store.watch(WATCH);
    Ok(Some(store))
}

/// The sign mode's shared state.
pub fn signer(config: &SignConfig, metrics: MilterMetrics) -> Result<Arc<Signer>> {
    anyhow::ensure!(
        ricochet_token::claims::is_participant_id(&config.esp),
        "--esp {:?} is not a participant id",
        config.esp
    );
    let key = SigningKey::from_file(&config.key).context("--key")?;
    let send_log = SendLog::open(&config.send_log).context("--send-log")?;
    let senders = config
        .senders
        .as_deref()
        .map(SenderMapFile::open)
        .transpose()
        .context("--senders")?;
    if let Some(file) = &senders {
        file.watch(WATCH);
    }
    anyhow::ensure!(
        senders.is_some() || config.trust_sender_header,
        "no way to find a sender id: give --senders FILE, or --trust-sender-header"
    );
    Ok(Arc::new(Signer {
        esp: config.esp.clone(),
        key: Arc::new(key),
        send_log: Mutex::new(send_log),
        send_log_path: config.send_log.clone(),
        senders,
        trust_sender_header: config.trust_sender_header,
        unsigned: config.unsigned,
        policies: policies(config.policies.as_deref())?,
        lifetime_secs: config.lifetime_days as i64 * 86_400,
        metrics,
    }))
}

/// The check mode's shared state and, if configured, its reporter.
pub fn checker(
    config: &CheckConfig,
    metrics: MilterMetrics,
) -> Result<(Arc<Checker>, Option<Reporter>)> {
    let registry = RegistryHandle::open(&config.registry).context("--registry")?;
    registry.watch(WATCH);
    let counts = DeliveryCounts::open(&config.report.counts_file).context("--counts-file")?;
    let reporter = match &config.report.ingest_url {
        None => None,
        Some(url) => {
            let provider = config
                .report
                .provider
                .clone()
                .context("--ingest-url needs --provider")?;
            let key_path = config
                .report
                .provider_key
                .as_deref()
                .context("--ingest-url needs --provider-key")?;
            let key = SigningKey::from_file(key_path).context("--provider-key")?;
            Some(Reporter {
                ingest_url: url.clone(),
                provider,
                key: Arc::new(key),
                http: reqwest::Client::new(),
            })
        }
    };
    let checker = Checker {
        registry,
        clock_skew_secs: config.clock_skew_secs,
        policies: policies(config.policies.as_deref())?,
        default_action: config.policy_action,
        counts: Arc::new(counts),
        metrics,
    };
    Ok((Arc::new(checker), reporter))
}
