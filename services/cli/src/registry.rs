//! `ricochet registry`: maintain the participants file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_registry::{add_participant, NewParticipant, ParticipantKind, Registry};
use ricochet_token::JwkSet;

use crate::RegistryArg;

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Register a mailbox provider with the recipient domains it hosts.
    AddProvider {
        #[command(flatten)]
        registry: RegistryArg,
        /// Provider id (lower-case, e.g. mail.example).
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A recipient domain it hosts; repeat for several.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// File with the provider's public JWKS (or one public JWK).
        #[arg(long)]
        jwks: PathBuf,
    },
    /// Register an ESP.
    AddEsp {
        #[command(flatten)]
        registry: RegistryArg,
        /// ESP id (lower-case, e.g. esp-a.example); also the iss of its tokens.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// File with the ESP's public JWKS (or one public JWK).
        #[arg(long)]
        jwks: PathBuf,
        /// URL to push tier changes to.
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Validate the registry file and list its participants.
    Check {
        #[command(flatten)]
        registry: RegistryArg,
    },
}

fn read_jwks(path: &Path) -> Result<JwkSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    JwkSet::from_json(&text).with_context(|| format!("reading keys from {}", path.display()))
}

pub fn run(cmd: RegistryCommand) -> Result<ExitCode> {
    let (path, new) = match cmd {
        RegistryCommand::AddProvider {
            registry,
            id,
            name,
            domains,
            jwks,
        } => (
            registry.registry,
            NewParticipant {
                kind: ParticipantKind::Provider,
                id,
                name,
                keys: read_jwks(&jwks)?.keys,
                domains,
                webhook_url: None,
            },
        ),
        RegistryCommand::AddEsp {
            registry,
            id,
            name,
            jwks,
            webhook_url,
        } => (
            registry.registry,
            NewParticipant {
                kind: ParticipantKind::Esp,
                id,
                name,
                keys: read_jwks(&jwks)?.keys,
                domains: vec![],
                webhook_url,
            },
        ),
        RegistryCommand::Check { registry } => {
            let reg = Registry::load(&registry.registry)?;
            for p in reg.providers() {
                let domains: Vec<_> = p.domains.iter().map(String::as_str).collect();
                println!(
                    "provider {:<24} {} key(s)  domains: {}",
                    p.participant.id,
                    p.participant.keys.len(),
                    domains.join(", ")
                );
            }
            for e in reg.esps() {
                println!(
                    "esp      {:<24} {} key(s)  webhook: {}",
                    e.participant.id,
                    e.participant.keys.len(),
                    e.webhook_url.as_deref().unwrap_or("-")
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    add_participant(&path, &new)?;
    eprintln!(
        "added {} {} to {}",
        new.kind.table(),
        new.id,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
