//! `ricochet policy`: check a scoring policy file before scoring reads it;
//! ask or publish recipient policies ([`crate::recipient_policy`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use ricochet_scoring::{Level, Policy};
use ricochet_token::Nature;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a scoring policy file (FILE), or ask a recipient domain's
    /// published policy whether it accepts mail of a nature (--domain,
    /// --nature): what an ESP runs before sending.
    ///
    /// Scoring policy: exit code 0 if valid; 2 with `file:line: field:
    /// reason` (or the parser's line and column) if not. Settings the file
    /// leaves out keep their defaults (deploy/scoring-policy.toml lists
    /// them all). Recipient policy: exit code 0 if the policy accepts the
    /// mail (or the domain publishes none), 2 if it refuses it.
    Check {
        /// The scoring policy file (TOML).
        #[arg(required_unless_present = "domain")]
        file: Option<PathBuf>,
        /// The recipient domain whose published policy to ask.
        #[arg(long, conflicts_with = "file", requires = "nature")]
        domain: Option<String>,
        /// The declared nature of the mail.
        #[arg(long)]
        nature: Option<Nature>,
        /// One recipient, whose own rule (if the policy has one) wins.
        #[arg(long)]
        recipient: Option<String>,
        /// Where policies are published (ingest's base URL).
        #[arg(
            long,
            env = "RICOCHET_INGEST_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
    },
    /// Publish a provider's recipient policy (JSON, schemas/recipient-policy.md)
    /// into the policy directory ingest and the milters read: validated
    /// (errors name line, column and field), the domain checked to be one
    /// the provider hosts, the version in force kept in the history. Ingest
    /// serves it within 2 s, without a restart.
    Publish {
        /// The policy file.
        file: PathBuf,
        /// The provider the domain belongs to.
        #[arg(long)]
        provider: String,
        /// The policy directory.
        #[arg(long, env = "RICOCHET_POLICY_DIR", default_value = "policies")]
        dir: PathBuf,
        /// Participants registry file.
        #[arg(long, env = "RICOCHET_REGISTRY", default_value = "registry.toml")]
        registry: PathBuf,
    },
}

/// Runs a `policy` subcommand.
pub async fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Check {
            file: Some(file), ..
        } => check_scoring(&file),
        PolicyCommand::Check {
            domain: Some(domain),
            nature: Some(nature),
            recipient,
            url,
            ..
        } => crate::recipient_policy::check(&url, &domain, nature, recipient.as_deref()).await,
        PolicyCommand::Check { .. } => {
            anyhow::bail!("give a scoring policy FILE, or --domain and --nature")
        }
        PolicyCommand::Publish {
            file,
            provider,
            dir,
            registry,
        } => crate::recipient_policy::publish(&file, &provider, &dir, &registry),
    }
}

fn check_scoring(file: &Path) -> Result<ExitCode> {
    let policy = match Policy::load(file) {
        Ok(p) => p,
        Err(e) => {
            println!("invalid: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!("policy OK: {}", file.display());
    for level in Level::ALL {
        println!("  {level}: {}", policy.explain(level));
    }
    let weights: Vec<String> = policy
        .weights
        .iter()
        .map(|(code, w)| format!("{code} {w}"))
        .collect();
    println!("  weights: {}", weights.join(", "));
    println!(
        "  caps: at most {} complaints per reporter and key; one provider at most {} % of a key's weighted complaints when two or more deliver",
        policy.max_per_reporter,
        policy.max_provider_share * 100.0
    );
    println!(
        "  bursts: a campaign with at least {} complaints in an hour, {} % or more of its sender's",
        policy.burst_min_complaints,
        policy.burst_share * 100.0
    );
    Ok(ExitCode::SUCCESS)
}
