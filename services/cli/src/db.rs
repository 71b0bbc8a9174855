//! `ricochet db`: ClickHouse schema.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_storage::{ClickHouseConfig, Migrator};

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply pending migrations (idempotent; refuses if an applied file changed).
    ///
    /// Connection: RICOCHET_CLICKHOUSE_URL (default http://127.0.0.1:8123),
    /// RICOCHET_CLICKHOUSE_DATABASE (default ricochet), RICOCHET_CLICKHOUSE_USER,
    /// RICOCHET_CLICKHOUSE_PASSWORD.
    Migrate,
}

pub async fn run(cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Migrate => {
            let config = ClickHouseConfig::from_env()?;
            let report = Migrator::new(config.clone())?
                .run()
                .await
                .with_context(|| format!("migrating {} at {}", config.database, config.url))?;
            for name in &report.applied {
                println!("applied  {name}");
            }
            println!(
                "database {}: {} migration(s) applied now, {} already applied",
                config.database,
                report.applied.len(),
                report.already_applied
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
