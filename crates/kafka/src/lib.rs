//! Ricochet's Kafka topics ([`topics`]), client settings ([`KafkaConfig`]),
//! the records on the topics ([`records`]) and the closed sets of names they
//! and the tables use ([`vocabulary`]: complaint codes, tiers, levels, rules).
//!
//! Works with any Kafka-protocol broker. The local stack runs tansu, which lacks
//! transactions, DeleteRecords, DeleteTopics on sqlite and CreatePartitions, so
//! nothing here relies on them: topics are created once with their final
//! partition count, and exactly-once counting is done downstream by token id.

pub mod config;
pub mod encode;
pub mod records;
pub mod topics;
pub mod vocabulary;

pub use config::KafkaConfig;
pub use records::{sender_key, ComplaintRecord, DeliveryRecord};
pub use topics::{ensure_topics, TopicOutcome, TopicSpec, TOPICS};
pub use vocabulary::{
    ComplaintCode, Level, Rule, Tier, UnknownCode, UnknownLevel, UnknownRule, UnknownTier,
};
