//! `ricochet audit`: check that penalty history was not rewritten.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_scoring::chain::verify_chain;
use ricochet_scoring::store::penalties::penalty_chain;
use ricochet_storage::ClickHouseConfig;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute an ESP's penalty hash chain; exit code 2 and the first broken row if it does not hold.
    ///
    /// Connection: RICOCHET_CLICKHOUSE_URL, RICOCHET_CLICKHOUSE_DATABASE (see `ricochet db --help`).
    Verify {
        /// The ESP whose chain to check.
        #[arg(long)]
        esp: String,
    },
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::Verify { esp } = cmd;
    let config = ClickHouseConfig::from_env()?;
    let rows = penalty_chain(&config.client(), &esp)
        .await
        .with_context(|| format!("reading penalties of {esp} from {}", config.url))?;
    match verify_chain(&rows) {
        Ok(()) => {
            let head = rows.last().map_or("-", |r| r.hash.as_str());
            println!("chain intact: {esp}, {} row(s), head {head}", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("chain BROKEN: {esp}: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
