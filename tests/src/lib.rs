//! Helpers for tests that run against the local stack (`deploy/local/stack up`).
//!
//! Every test makes its own topic or database with a random name, so tests run
//! in parallel, can be repeated, and never see each other's data.

use std::future::Future;
use std::time::{Duration, Instant};

use ricochet_kafka::KafkaConfig;
use ricochet_storage::ClickHouseConfig;

/// Kafka settings from the environment the stack exports (defaults: loopback).
pub fn kafka() -> KafkaConfig {
    KafkaConfig::from_env().expect("valid RICOCHET_KAFKA_* settings")
}

/// ClickHouse settings for a fresh database named after `prefix`.
pub fn clickhouse(prefix: &str) -> ClickHouseConfig {
    ClickHouseConfig::from_env().with_database(&unique(prefix).replace('-', "_"))
}

/// `prefix` plus 64 random bits, for topic, group and database names.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    format!("{prefix}-{:016x}", u64::from_le_bytes(bytes))
}

/// Polls `check` until it returns `Some`, failing the test with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; is the stack up? (deploy/local/stack status)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
