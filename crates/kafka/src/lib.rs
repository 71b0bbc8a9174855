//! Ricochet's Kafka topics ([`topics`]) and client settings ([`KafkaConfig`]).
//!
//! Works with any Kafka-protocol broker. The local stack runs tansu, which lacks
//! transactions, DeleteRecords, DeleteTopics on sqlite and CreatePartitions, so
//! nothing here relies on them: topics are created once with their final
//! partition count, and exactly-once counting is done downstream by token id.

pub mod config;
pub mod records;
pub mod topics;

pub use config::KafkaConfig;
pub use records::{sender_key, ComplaintCode, ComplaintRecord, DeliveryRecord};
pub use topics::{ensure_topics, TopicOutcome, TopicSpec, TOPICS};
