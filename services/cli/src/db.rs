//! `ricochet db`: ClickHouse schema.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_storage::cluster::ClusterSpec;
use ricochet_storage::{ClickHouseConfig, Migrator};

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply pending migrations (idempotent; refuses if an applied file changed).
    ///
    /// Connection: RICOCHET_CLICKHOUSE_URL (default http://127.0.0.1:8123),
    /// RICOCHET_CLICKHOUSE_DATABASE (default ricochet), RICOCHET_CLICKHOUSE_USER,
    /// RICOCHET_CLICKHOUSE_PASSWORD. With --cluster, the cluster form: every
    /// table as `<name>_local` on each shard with a `Distributed` table in
    /// front, sharded by (esp, sender).
    Migrate {
        /// The cluster's name in the servers' `remote_servers`.
        #[arg(long, env = "RICOCHET_CLICKHOUSE_CLUSTER")]
        cluster: Option<String>,
        /// The cluster has a coordination service (ClickHouse Keeper or
        /// ZooKeeper): `ON CLUSTER` DDL run once, `Replicated*` engines.
        #[arg(long, requires = "cluster")]
        coordinated: bool,
        /// Without a coordination service: the HTTP URL of every node,
        /// each migrated in turn (same database, user and password).
        #[arg(
            long,
            value_delimiter = ',',
            requires = "cluster",
            env = "RICOCHET_CLICKHOUSE_NODES"
        )]
        nodes: Vec<String>,
    },
}

pub async fn run(cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Migrate {
            cluster,
            coordinated,
            nodes,
        } => {
            let config = ClickHouseConfig::from_env()?;
            let migrator = match cluster {
                None => Migrator::new(config.clone())?,
                Some(cluster) => {
                    anyhow::ensure!(
                        coordinated || !nodes.is_empty(),
                        "a cluster without a coordination service needs --nodes URL,URL,..."
                    );
                    let spec = ClusterSpec {
                        cluster,
                        coordinated,
                    };
                    Migrator::for_cluster(config.with_nodes(&nodes), &spec)?
                }
            };
            let report = migrator
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
