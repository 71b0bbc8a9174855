//! `ricochet policy`: check a scoring policy file before scoring reads it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use ricochet_scoring::{Level, Policy};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file and print the policy it puts in force.
    ///
    /// Exit code 0 if valid; 2 with `file:line: field: reason` (or the
    /// parser's line and column) if not. Settings the file leaves out keep
    /// their defaults (deploy/scoring-policy.toml lists them all).
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
}

/// Runs a `policy` subcommand.
pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    let PolicyCommand::Check { file } = cmd;
    let policy = match Policy::load(&file) {
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
