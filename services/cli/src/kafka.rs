//! `ricochet kafka`: topics.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_kafka::{ensure_topics, KafkaConfig, TopicOutcome, TOPICS};

#[derive(Subcommand, Debug)]
pub enum KafkaCommand {
    /// Create Ricochet's topics if missing (existing ones are left as they are).
    ///
    /// Brokers: RICOCHET_KAFKA_BROKERS (default 127.0.0.1:9092).
    Init {
        /// Partitions per new topic (RICOCHET_KAFKA_PARTITIONS, default 6). Choose
        /// for the future: partitions cannot be added later on every broker.
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor of new topics (RICOCHET_KAFKA_REPLICATION, default 1).
        #[arg(long)]
        replication: Option<i32>,
    },
}

pub async fn run(cmd: KafkaCommand) -> Result<ExitCode> {
    match cmd {
        KafkaCommand::Init {
            partitions,
            replication,
        } => {
            let mut config = KafkaConfig::from_env()?;
            config.partitions = partitions.unwrap_or(config.partitions);
            config.replication = replication.unwrap_or(config.replication);
            anyhow::ensure!(config.partitions >= 1, "--partitions must be at least 1");
            let names: Vec<&str> = TOPICS.iter().map(|t| t.name).collect();
            let outcomes = ensure_topics(&config, &names)
                .await
                .with_context(|| format!("creating topics on {}", config.brokers))?;
            for o in outcomes {
                match o {
                    TopicOutcome::Created(t) => {
                        println!("created  {t} ({} partitions)", config.partitions)
                    }
                    TopicOutcome::Existed(t) => println!("exists   {t}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
