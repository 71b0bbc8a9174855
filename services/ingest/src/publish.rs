//! Where accepted items go: the [`Publish`] seam, Kafka in production.
//!
//! A request is answered `200` only once [`Publish::publish_all`] returns `Ok`,
//! i.e. once every record of the batch is durable. [`KafkaPublisher`] is the
//! production sink; [`MemoryPublisher`] keeps records in memory so the HTTP
//! behaviour (authentication, limits, verdicts) is testable without a broker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use ricochet_kafka::KafkaConfig;
use thiserror::Error;
use tokio::sync::Notify;

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

/// The keyed records of one request, written one after another into a
/// single buffer: one allocation per request instead of two per record.
#[derive(Debug, Default)]
pub struct Records {
    bytes: Vec<u8>,
    /// Per record: where its key starts, where its payload starts, where it ends.
    spans: Vec<(usize, usize, usize)>,
}

impl Records {
    /// Room for `records` records of `bytes` bytes in all (more grows).
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Records {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(records),
        }
    }

    /// Appends a record whose key and payload the two functions write.
    pub fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), payload: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        let payload_at = self.bytes.len();
        payload(&mut self.bytes);
        self.spans.push((start, payload_at, self.bytes.len()));
    }

    /// Each record's `(key, payload)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let b = &self.bytes;
        self.spans.iter().map(|&(k, p, end)| (&b[k..p], &b[p..end]))
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A durable destination for accepted records.
pub trait Publish: Send + Sync + 'static {
    /// Sends every `(key, payload)` to `topic` and returns once all are durable;
    /// fails if any is not. On failure some records may still be durable:
    /// callers retry the whole batch, and consumers count by token id.
    fn publish_all<'a>(
        &'a self,
        topic: &'a str,
        records: &'a Records,
    ) -> BoxFuture<'a, Result<Duration, PublishError>>;

    /// Whether the destination answers (readiness); may block up to `timeout`.
    fn reachable(&self, timeout: Duration) -> bool;

    /// Waits up to `timeout` for everything queued to be durable (shutdown).
    fn flush(&self, timeout: Duration) -> Result<(), PublishError>;
}

/// A durable producer: idempotent, `acks=all`, bounded local queue and delivery timeout.
///
/// Acknowledgements are counted per batch ([`Acks`]): one counter and one
/// wake-up per request instead of a future per record, which is most of
/// what producing cost ingest per record.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<ThreadedProducer<AckContext>>,
}

/// Routes each delivery report to the batch its record belongs to.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        match result {
            Ok(_) => acks.settle(None),
            Err((e, _)) => acks.settle(Some(e.to_string())),
        }
    }
}

/// The records of one batch still waiting for Kafka, and what failed.
pub struct Acks {
    /// Records not yet settled, plus one while the batch is still being queued.
    pending: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    settled: Notify,
}

impl Acks {
    fn new(records: usize) -> Arc<Self> {
        Arc::new(Acks {
            pending: AtomicUsize::new(records + 1),
            failed: AtomicUsize::new(0),
            first_error: Mutex::new(None),
            settled: Notify::new(),
        })
    }

    /// One record is durable (`None`) or refused; wakes the waiter after the last.
    fn settle(&self, error: Option<String>) {
        if let Some(e) = error {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().expect("acks lock");
            first.get_or_insert(e);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit if the waiter is not waiting yet.
            self.settled.notify_one();
        }
    }

    /// Waits until every record is settled; the error says how many failed.
    async fn outcome(&self, total: usize) -> Result<(), PublishError> {
        self.settle(None); // the queuing is over: drop its hold
        if self.pending.load(Ordering::Acquire) != 0 {
            self.settled.notified().await;
        }
        match self.failed.load(Ordering::Acquire) {
            0 => Ok(()),
            failed => Err(PublishError::NotAcknowledged {
                failed,
                total,
                first: self
                    .first_error
                    .lock()
                    .expect("acks lock")
                    .take()
                    .unwrap_or_default(),
            }),
        }
    }
}

impl KafkaPublisher {
    /// Creates the producer; `timeout` bounds how long a record may wait for
    /// its ack, `linger` how long it waits to fill a batch.
    pub fn new(
        config: &KafkaConfig,
        timeout: Duration,
        linger: Duration,
    ) -> Result<Self, PublishError> {
        let mut c = config.producer_config();
        c.set("message.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", linger.as_millis().to_string())
            // Bounded local queue: a full queue fails the request fast instead of growing memory.
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144");
        let producer = c
            .create_with_context(AckContext)
            .map_err(PublishError::Create)?;
        Ok(KafkaPublisher {
            producer: Arc::new(producer),
        })
    }

    async fn send_all(&self, topic: &str, records: &Records) -> Result<Duration, PublishError> {
        let started = Instant::now();
        let acks = Acks::new(records.len());
        for (key, payload) in records.iter() {
            let record = BaseRecord::with_opaque_to(topic, acks.clone())
                .key(key)
                .payload(payload);
            if let Err((e, _)) = self.producer.send(record) {
                acks.settle(Some(e.to_string()));
            }
        }
        acks.outcome(records.len()).await?;
        Ok(started.elapsed())
    }
}

impl Publish for KafkaPublisher {
    fn publish_all<'a>(
        &'a self,
        topic: &'a str,
        records: &'a Records,
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
        records: &'a Records,
    ) -> BoxFuture<'a, Result<Duration, PublishError>> {
        let outcome = if self.down.load(Ordering::Relaxed) {
            Err(PublishError::NotAcknowledged {
                failed: records.len(),
                total: records.len(),
                first: "the destination is down".into(),
            })
        } else {
            let mut held = self.records.lock().expect("publisher lock");
            held.extend(records.iter().map(|(key, payload)| {
                let key = String::from_utf8_lossy(key).into_owned();
                (topic.to_string(), (key, payload.to_vec()))
            }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_settled_once_every_record_is() {
        let acks = Acks::new(3);
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.outcome(3).await })
        };
        acks.settle(None);
        acks.settle(None);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one record is still unsettled");
        acks.settle(None);
        let deadline = Duration::from_secs(5);
        let outcome = tokio::time::timeout(deadline, waiter).await.unwrap();
        assert!(outcome.unwrap().is_ok());
    }

    #[tokio::test]
    async fn failures_are_counted_and_the_first_is_kept() {
        let acks = Acks::new(3);
        acks.settle(Some("queue full".into()));
        acks.settle(None);
        acks.settle(Some("timed out".into()));
        match acks.outcome(3).await {
            Err(PublishError::NotAcknowledged {
                failed,
                total,
                first,
            }) => assert_eq!((failed, total, first.as_str()), (2, 3, "queue full")),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_empty_batch_is_settled_at_once() {
        assert!(Acks::new(0).outcome(0).await.is_ok());
    }
}
