//! Where accepted items go: the [`Publish`] seam, Kafka in production.
//!
//! A request is answered `200` only once [`Publish::publish_all`] returns `Ok`,
//! i.e. once every record of the batch is durable. [`KafkaPublisher`] is the
//! production sink; [`MemoryPublisher`] keeps records in memory so the HTTP
//! behaviour (authentication, limits, verdicts) is testable without a broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
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
    /// Records still queued when the flush at shutdown gave up.
    #[error("flushing the producer: {0}")]
    Flush(KafkaError),
}

/// One keyed record for a topic.
pub type Record = (String, Vec<u8>);

/// A durable destination for accepted records.
pub trait Publish: Send + Sync + 'static {
    /// Sends every `(key, payload)` to `topic` and returns once all are durable;
    /// fails if any is not. On failure some records may still be durable:
    /// callers retry the whole batch, and consumers count by token id.
    fn publish_all<'a>(
        &'a self,
        topic: &'a str,
        records: &'a [Record],
    ) -> BoxFuture<'a, Result<Duration, PublishError>>;

    /// Whether the destination answers (readiness); may block up to `timeout`.
    fn reachable(&self, timeout: Duration) -> bool;

    /// Waits up to `timeout` for everything queued to be durable (shutdown).
    fn flush(&self, timeout: Duration) -> Result<(), PublishError>;
}

/// A durable producer: idempotent, `acks=all`, bounded local queue and delivery timeout.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl KafkaPublisher {
    /// Creates the producer; `timeout` bounds how long a record may wait for its ack.
    pub fn new(config: &KafkaConfig, timeout: Duration) -> Result<Self, PublishError> {
        let mut c = config.producer_config();
        c.set("message.timeout.ms", timeout.as_millis().to_string())
            // Bounded local queue: a full queue fails the request fast instead of growing memory.
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144");
        Ok(KafkaPublisher {
            producer: c.create().map_err(PublishError::Create)?,
        })
    }

    async fn send_all(&self, topic: &str, records: &[Record]) -> Result<Duration, PublishError> {
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
        match failures.is_empty() {
            true => Ok(started.elapsed()),
            false => Err(PublishError::NotAcknowledged {
                failed: failures.len(),
                total: records.len(),
                first: failures.swap_remove(0),
            }),
        }
    }
}

impl Publish for KafkaPublisher {
    fn publish_all<'a>(
        &'a self,
        topic: &'a str,
        records: &'a [Record],
    ) -> BoxFuture<'a, Result<Duration, PublishError>> {
        Box::pin(self.send_all(topic, records))
    }

    fn reachable(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok()
    }

    fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer.flush(timeout).map_err(PublishError::Flush)
    }
}

/// Keeps what is published in memory, in order; can be switched to refuse
/// everything, as a broker that is down does. For tests and dry runs.
#[derive(Default)]
pub struct MemoryPublisher {
    records: Mutex<Vec<(String, Record)>>,
    down: AtomicBool,
}

impl MemoryPublisher {
    /// Every `(topic, (key, payload))` published so far.
    pub fn records(&self) -> Vec<(String, Record)> {
        self.records.lock().expect("publisher lock").clone()
    }

    /// From now on, refuse (`true`) or accept (`false`) every record.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

impl Publish for MemoryPublisher {
    fn publish_all<'a>(
        &'a self,
        topic: &'a str,
        records: &'a [Record],
    ) -> BoxFuture<'a, Result<Duration, PublishError>> {
        let outcome = if self.down.load(Ordering::Relaxed) {
            Err(PublishError::NotAcknowledged {
                failed: records.len(),
                total: records.len(),
                first: "the destination is down".into(),
            })
        } else {
            let mut held = self.records.lock().expect("publisher lock");
            held.extend(records.iter().map(|r| (topic.to_string(), r.clone())));
            Ok(Duration::ZERO)
        };
        Box::pin(std::future::ready(outcome))
    }

    fn reachable(&self, _timeout: Duration) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn flush(&self, _timeout: Duration) -> Result<(), PublishError> {
        Ok(())
    }
}
