//! The topics Ricochet uses, and their idempotent creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;
use tracing::info;

use crate::config::KafkaConfig;

/// One topic and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name (versioned: a breaking change of the message schema gets a new topic).
    pub name: &'static str,
    /// What the messages are.
    pub purpose: &'static str,
}

/// Accepted complaints, produced by ingest (key `iss/sub`).
pub const COMPLAINTS: &str = "complaints.v1";
/// Delivery counts, produced by ingest (key `iss/sub`).
pub const DELIVERIES: &str = "deliveries.v1";
/// Tier changes, produced by scoring for ESPs that integrate by Kafka (key `esp/sender`).
pub const PENALTIES: &str = "penalties.v1";
/// The complaint feed, produced by scoring for ESPs that integrate by Kafka (key `esp/sender`).
pub const FEEDBACK: &str = "feedback.v1";
/// Records the loader could not decode or validate, with the reason and source offset.
pub const DEAD_LETTER: &str = "ricochet.dlq.v1";

/// Every topic Ricochet creates.
pub const TOPICS: [TopicSpec; 5] = [
    TopicSpec {
        name: COMPLAINTS,
        purpose: "accepted complaints from ingest",
    },
    TopicSpec {
        name: DELIVERIES,
        purpose: "delivered-message counts from providers",
    },
    TopicSpec {
        name: PENALTIES,
        purpose: "tier changes from scoring",
    },
    TopicSpec {
        name: FEEDBACK,
        purpose: "every accepted complaint, once, for its ESP (the complaint feed)",
    },
    TopicSpec {
        name: DEAD_LETTER,
        purpose: "records the loader could not process",
    },
];

/// Why topics could not be created.
#[derive(Debug, Error)]
pub enum TopicError {
    /// The admin client could not be built or the request failed as a whole.
    #[error("Kafka admin request to {brokers} failed: {source}")]
    Admin {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    /// The broker refused to create one topic.
    #[error("creating topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Newly created.
    Created(String),
    /// Already there; left as it was.
    Existed(String),
}

/// Creates `names` with the configured partitions and replication; existing topics are left alone.
pub async fn ensure_topics(
    config: &KafkaConfig,
    names: &[&str],
) -> Result<Vec<TopicOutcome>, TopicError> {
    let admin_err = |source| TopicError::Admin {
        brokers: config.brokers.clone(),
        source,
    };
    let admin: AdminClient<DefaultClientContext> =
        config.client_config().create().map_err(admin_err)?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                config.partitions,
                TopicReplication::Fixed(config.replication),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new, &opts).await.map_err(admin_err)?;
    let mut out = vec![];
    for r in results {
        match r {
            Ok(topic) => {
                info!(%topic, partitions = config.partitions, "created topic");
                out.push(TopicOutcome::Created(topic));
            }
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                out.push(TopicOutcome::Existed(topic))
            }
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(out)
}
