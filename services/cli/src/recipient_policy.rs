//! Recipient policies from the command line: an ESP asks a domain's
//! published policy before sending; an operator publishes a provider's.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ricochet_policy::store::{publish as publish_into, StoreError};
use ricochet_policy::{Decision, RecipientPolicy};
use ricochet_registry::Registry;
use ricochet_token::Nature;

/// `ricochet policy check --domain D --nature N`.
pub async fn check(
    url: &str,
    domain: &str,
    nature: Nature,
    recipient: Option<&str>,
) -> Result<ExitCode> {
    let address = format!(
        "{}/.well-known/ricochet-policy/{domain}",
        url.trim_end_matches('/')
    );
    let response = reqwest::get(&address)
        .await
        .with_context(|| format!("fetching {address}"))?;
    match response.status().as_u16() {
        404 => {
            println!("accepted: {domain} publishes no recipient policy");
            return Ok(ExitCode::SUCCESS);
        }
        200 => {}
        s => anyhow::bail!(
            "{address} answered {s}: {}",
            response.text().await.unwrap_or_default()
        ),
    }
    let text = response.text().await?;
    let policy = RecipientPolicy::parse(&text).map_err(|e| anyhow::anyhow!("{address}: {e}"))?;
    let recipient = recipient.map_or_else(|| format!("*@{}", policy.domain), str::to_string);
    match policy.decide(&recipient, Some(nature)) {
        Decision::Accepted => {
            println!(
                "accepted: {} takes {nature} mail (policy from {})",
                policy.domain, policy.effective_from
            );
            Ok(ExitCode::SUCCESS)
        }
        Decision::Refused { reason } => {
            let action = policy.action.map_or("the server's own".into(), |a| {
                format!("{a:?}").to_lowercase()
            });
            println!(
                "refused: {reason} (policy of {} from {}; action: {action})",
                policy.domain, policy.effective_from
            );
            Ok(ExitCode::from(2))
        }
    }
}

/// `ricochet policy publish FILE --provider P`.
pub fn publish(file: &Path, provider: &str, dir: &Path, registry: &Path) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let policy = match RecipientPolicy::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            println!(
                "invalid: {}:{}:{}: {}: {}",
                file.display(),
                e.line,
                e.column,
                e.field,
                e.message
            );
            return Ok(ExitCode::from(2));
        }
    };
    let registry = Registry::load(registry)?;
    let hosts = registry
        .provider(provider)
        .is_some_and(|p| p.hosts(&policy.domain));
    anyhow::ensure!(
        hosts,
        "{provider} does not host {}: only its provider may publish its policy",
        policy.domain
    );
    match publish_into(dir, &text) {
        Ok(p) => {
            println!(
                "published: {} from {} in {}",
                p.domain,
                p.effective_from,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ StoreError::Backdated { .. }) => {
            println!("refused: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}
