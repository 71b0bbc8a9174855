//! Publishing accepted items to Kafka and waiting until every one is acknowledged.

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use ricochet_kafka::KafkaConfig;
use thiserror::Error;

/// Why a batch is not (entirely) durable.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The producer could not be created.
    #[error("creating the Kafka producer: {0}")]
    Create(KafkaError),
    /// At least one record was not acknowledged in time (or was refused).
    #[error("{failed} of {total} records not acknowledged by Kafka: {first}")]
    NotAcknowledged {
        failed: usize,
        total: usize,
        first: String,
    },
}

/// A durable producer: idempotent, `acks=all`, bounded local queue and delivery timeout.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl Publisher {
    /// Creates the producer; `timeout` bounds how long a record may wait for its ack.
    pub fn new(config: &KafkaConfig, timeout: Duration) -> Result<Self, PublishError> {
        let mut c = config.producer_config();
        c.set("message.timeout.ms", timeout.as_millis().to_string())
            // Bounded local queue: a full queue fails the request fast instead of growing memory.
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144");
        Ok(Publisher {
            producer: c.create().map_err(PublishError::Create)?,
        })
    }

    /// The underlying producer (health checks, flush on shutdown).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Sends every `(key, payload)` to `topic` and returns once all are acknowledged
    /// by the broker; fails if any is not. On failure, some records may still be
    /// durable: callers retry the whole batch, and consumers count by token id.
    pub async fn publish_all(
        &self,
        topic: &str,
        records: &[(String, Vec<u8>)],
    ) -> Result<Duration, PublishError> {
        let started = Instant::now();
        let mut pending = Vec::with_capacity(records.len());
        let mut failures = vec![];
        for (key, payload) in records {
            match self
                .producer
                .send_result(FutureRecord::to(topic).key(key).payload(payload))
            {
                Ok(f) => pending.push(f),
                Err((e, _)) => failures.push(e.to_string()),
            }
        }
        for r in join_all(pending).await {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => failures.push(e.to_string()),
                Err(_) => failures.push("producer shut down".into()),
            }
        }
        if failures.is_empty() {
            Ok(started.elapsed())
        } else {
            Err(PublishError::NotAcknowledged {
                failed: failures.len(),
                total: records.len(),
                first: failures.swap_remove(0),
            })
        }
    }

    /// Waits up to `timeout` for everything queued to be delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
