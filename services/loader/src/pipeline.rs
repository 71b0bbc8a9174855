//! The consume → batch → insert → commit loop.
//!
//! Invariant: an offset is committed only after every record before it is
//! either acknowledged by ClickHouse or acknowledged by the dead-letter topic.
//! A crash anywhere therefore re-reads records, never skips them; re-read
//! complaints are counted once because every count is by token id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use ricochet_kafka::KafkaConfig;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow};
use serde::Serialize;
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::config::LoaderConfig;
use crate::decode::{self, Poison};
use crate::metrics::Metrics;

/// A record the loader could not decode, as written to the dead-letter topic.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// Topic it came from.
    pub source_topic: String,
    /// Partition it came from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Its key, if any (lossy UTF-8).
    pub key: Option<String>,
    /// Its value, base64 (standard alphabet), so nothing is lost.
    pub payload_base64: String,
    /// Machine-readable reason.
    pub reason: &'static str,
    /// What was wrong.
    pub detail: String,
    /// When the loader gave up on it, Unix milliseconds.
    pub failed_at_ms: i64,
}

/// Records read but not yet committed.
#[derive(Default)]
struct Pending {
    complaints: Vec<ComplaintRow>,
    deliveries: Vec<DeliveryRow>,
    dead: Vec<DeadLetter>,
    /// (topic, partition) → next offset to commit.
    offsets: BTreeMap<(String, i32), i64>,
    bytes: usize,
    since: Option<Instant>,
}

impl Pending {
    fn rows(&self) -> usize {
        self.complaints.len() + self.deliveries.len() + self.dead.len()
    }

    fn due(&self, config: &LoaderConfig) -> bool {
        self.rows() >= config.batch_rows
            || self.bytes >= config.batch_bytes
            || self
                .since
                .is_some_and(|s| s.elapsed() >= config.batch_age())
    }
}

/// Writes a batch out: dead letters, then rows, then the offsets.
struct Flusher {
    config: LoaderConfig,
    clickhouse: clickhouse::Client,
    dead_letters: FutureProducer,
    metrics: Metrics,
    handle: Handle,
    stop: Arc<AtomicBool>,
    clickhouse_ok: Arc<AtomicBool>,
}

/// The batch could not be written because the loader is stopping; nothing was committed.
struct Interrupted;

impl Flusher {
    /// Retries `attempt` with exponential backoff until it succeeds or the loader stops.
    fn retry<F, Fut, E>(&self, what: &str, mut attempt: F) -> Result<(), Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.handle.block_on(attempt()) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "{what} failed; retrying");
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(Interrupted);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.config.max_backoff());
                }
            }
        }
    }

    fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), Interrupted>
    where
        T: for<'a> clickhouse::Row<Value<'a> = T> + clickhouse::RowWrite + Sync,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.retry(&format!("insert into {table}"), || async {
            let result = async {
                let mut insert = self.clickhouse.insert::<T>(table).await?;
                for row in rows {
                    insert.write(row).await?;
                }
                insert.end().await
            }
            .await;
            if result.is_err() {
                // Readiness first: whoever sees the error count sees not-ready too.
                self.clickhouse_ok.store(false, Ordering::Relaxed);
                self.metrics.clickhouse_errors.inc();
            }
            result
        })?;
        self.clickhouse_ok.store(true, Ordering::Relaxed);
        self.metrics
            .insert_seconds
            .with_label_values(&[table])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .inserted
            .with_label_values(&[table])
            .inc_by(rows.len() as u64);
        Ok(())
    }

    fn send_dead_letters(&self, dead: &[DeadLetter]) -> Result<(), Interrupted> {
        for d in dead {
            let payload = serde_json::to_vec(d).expect("dead letter serializes");
            let key = format!("{}/{}/{}", d.source_topic, d.partition, d.offset);
            self.retry("dead-letter produce", || async {
                self.dead_letters
                    .send(
                        FutureRecord::to(&self.config.dead_letter_topic)
                            .key(&key)
                            .payload(&payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            })?;
            self.metrics
                .dead_letters
                .with_label_values(&[d.reason])
                .inc();
        }
        Ok(())
    }

    /// Writes everything pending and commits its offsets. On `Interrupted`
    /// nothing is committed and the records will be read again.
    ///
    /// Batches in the consume loop commit asynchronously: a synchronous commit
    /// sent as the broker goes down blocks the loop until the group session
    /// times out, and the rebalance the broker asks for on its return is not
    /// served meanwhile (seen once in the fault suite, after which the loader
    /// never got its partitions back). Revocations and shutdown commit
    /// synchronously: the offsets must be in before the partitions go.
    fn flush(
        &self,
        consumer: &BaseConsumer<LoaderContext>,
        p: &mut Pending,
        mode: CommitMode,
    ) -> Result<(), Interrupted> {
        if p.offsets.is_empty() {
            return Ok(());
        }
        self.send_dead_letters(&p.dead)?;
        self.insert("complaints", &p.complaints)?;
        self.insert("deliveries", &p.deliveries)?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &p.offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .expect("valid offset");
        }
        // The outcome, sync or async, reaches `commit_callback` (librdkafka
        // calls it for every commit once a callback is set). A failed commit
        // loses nothing: the rows are in, and re-read records count once.
        let _ = consumer.commit(&tpl, mode);
        self.metrics.batch_rows.observe(p.rows() as f64);
        *p = Pending::default();
        Ok(())
    }
}

/// How long the consumer has been out of its group's steady state (joining,
/// syncing, waiting for an assignment), from librdkafka's statistics.
#[derive(Debug, Default)]
struct JoinWatch {
    /// The last join state reported.
    state: String,
    /// Since when the reports have not said `steady`.
    since: Option<Instant>,
}

impl JoinWatch {
    /// Records the join state of a statistics report received at `now`.
    fn observe(&mut self, join_state: &str, now: Instant) {
        if join_state == "steady" {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
        self.state = join_state.to_string();
    }

    /// How long the consumer has been joining, if `limit` or longer at `now`.
    fn stuck(&self, now: Instant, limit: Duration) -> Option<Duration> {
        let joining = now.duration_since(self.since?);
        (joining >= limit).then_some(joining)
    }
}

/// The consumer's context: flushes on partition revocation, reads lag and
/// the group join state from statistics.
pub struct LoaderContext {
    pending: Arc<Mutex<Pending>>,
    flusher: Arc<Flusher>,
    join: Arc<Mutex<JoinWatch>>,
}

impl ClientContext for LoaderContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(group) = &statistics.cgrp {
            self.join
                .lock()
                .expect("join watch lock")
                .observe(&group.join_state, Instant::now());
        }
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.flusher
                        .metrics
                        .lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LoaderContext {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            // Nothing to commit is not a failure.
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.flusher.metrics.commit_errors.inc();
                warn!(error = %e, "offset commit failed");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions: Vec<String> = (list.elements().iter())
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            info!(?partitions, "partitions assigned");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            info!(
                partitions = list.count(),
                "partitions revoked; flushing and committing first"
            );
            let mut p = self.pending.lock().expect("pending lock");
            if self
                .flusher
                .flush(consumer, &mut p, CommitMode::Sync)
                .is_err()
            {
                // Stopping while ClickHouse is down: drop the batch uncommitted;
                // the next owner of these partitions reads it again.
                *p = Pending::default();
            }
        }
    }
}

/// Shared state the HTTP endpoints read.
#[derive(Clone)]
pub struct Health {
    /// False after a failed insert, true after a successful one.
    pub clickhouse_ok: Arc<AtomicBool>,
    /// True while the consume loop runs.
    pub running: Arc<AtomicBool>,
}

/// Runs the loader until `stop` is set; then flushes what it can and commits.
/// Call from a plain thread (not an async worker): it blocks.
pub fn run(
    config: LoaderConfig,
    kafka: &KafkaConfig,
    clickhouse: &ClickHouseConfig,
    metrics: Metrics,
    handle: Handle,
    stop: Arc<AtomicBool>,
    health: Health,
) -> anyhow::Result<()> {
    let dead_letters: FutureProducer = kafka.producer_config().create()?;
    let flusher = Arc::new(Flusher {
        config: config.clone(),
        // Plain RowBinary: the schema is ours and migrated, so skip per-insert validation.
        clickhouse: clickhouse.client().with_validation(false),
        dead_letters,
        metrics: metrics.clone(),
        handle,
        stop: stop.clone(),
        clickhouse_ok: health.clickhouse_ok.clone(),
    });
    let pending = Arc::new(Mutex::new(Pending::default()));
    let join = Arc::new(Mutex::new(JoinWatch::default()));
    let cc = consumer_config(kafka, &config);
    let subscribed = || -> anyhow::Result<BaseConsumer<LoaderContext>> {
        *join.lock().expect("join watch lock") = JoinWatch::default();
        let consumer: BaseConsumer<LoaderContext> = cc.create_with_context(LoaderContext {
            pending: pending.clone(),
            flusher: flusher.clone(),
            join: join.clone(),
        })?;
        consumer.subscribe(&[&config.complaints_topic, &config.deliveries_topic])?;
        Ok(consumer)
    };
    let mut consumer = subscribed()?;
    health.running.store(true, Ordering::Relaxed);
    info!(group = %config.group, "loader consuming");

    while !stop.load(Ordering::Relaxed) {
        if let Some((joining, state)) = stuck_joining(&join, &config) {
            warn!(
                join_state = %state,
                joining_secs = joining.as_secs(),
                "consumer stuck joining its group; replacing it"
            );
            // Closing the old consumer revokes its partitions, which flushes
            // and commits what is pending (the pending lock must be free).
            drop(consumer);
            consumer = subscribed()?;
            metrics.consumer_restarts.inc();
        }
        let polled = consumer.poll(Duration::from_millis(100));
        let mut p = pending.lock().expect("pending lock");
        match polled {
            Some(Ok(m)) => take(&mut p, &m, &config, &metrics),
            Some(Err(e)) => warn!(error = %e, "consumer error"),
            None => {}
        }
        if p.due(&config) && flusher.flush(&consumer, &mut p, CommitMode::Async).is_err() {
            break;
        }
    }
    info!("stopping: flushing the last batch");
    let mut p = pending.lock().expect("pending lock");
    if flusher.flush(&consumer, &mut p, CommitMode::Sync).is_err() {
        error!("ClickHouse unavailable at shutdown; the last batch stays uncommitted and will be read again");
    }
    drop(p);
    // Serves the commit callback with the last commit's outcome (a record
    // this poll returns is not committed and will be read again).
    let _ = consumer.poll(Duration::ZERO);
    health.running.store(false, Ordering::Relaxed);
    Ok(())
}

/// The consumer's settings: the group's, plus statistics (the join watch
/// reads them) and the static membership id if set.
fn consumer_config(kafka: &KafkaConfig, config: &LoaderConfig) -> rdkafka::ClientConfig {
    let mut cc = kafka.consumer_config(&config.group);
    // A batch retried through a ClickHouse outage longer than this costs the
    // loader its partitions; it rejoins after, and re-read records count once.
    cc.set("statistics.interval.ms", "5000")
        .set("max.poll.interval.ms", "300000");
    if let Some(id) = &config.instance_id {
        cc.set("group.instance.id", id);
    }
    cc
}

/// How long the consumer has been joining its group and in which state, if
/// longer than the configured limit.
fn stuck_joining(join: &Mutex<JoinWatch>, config: &LoaderConfig) -> Option<(Duration, String)> {
    let limit = config.rejoin_after()?;
    let watch = join.lock().expect("join watch lock");
    let joining = watch.stuck(Instant::now(), limit)?;
    Some((joining, watch.state.clone()))
}

/// Adds a consumed record to the pending batch: its row, or a dead letter
/// when it does not decode; either way its offset is done.
fn take(p: &mut Pending, m: &BorrowedMessage<'_>, config: &LoaderConfig, metrics: &Metrics) {
    let topic = m.topic().to_string();
    metrics.consumed.with_label_values(&[&topic]).inc();
    let payload = m.payload();
    p.bytes += payload.map_or(0, <[u8]>::len);
    p.since.get_or_insert_with(Instant::now);
    let outcome = if topic == config.complaints_topic {
        decode::complaint(payload, m.partition(), m.offset()).map(|r| p.complaints.push(r))
    } else {
        decode::delivery(payload).map(|r| p.deliveries.push(r))
    };
    if let Err(Poison { reason, detail }) = outcome {
        warn!(%topic, partition = m.partition(), offset = m.offset(), reason, "poison record to the dead-letter topic");
        p.dead.push(DeadLetter {
            source_topic: topic.clone(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload_base64: base64::engine::general_purpose::STANDARD
                .encode(payload.unwrap_or_default()),
            reason,
            detail,
            failed_at_ms: ricochet_token::verify::unix_now_ms(),
        });
    }
    p.offsets.insert((topic, m.partition()), m.offset() + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_is_stuck_only_after_joining_for_the_whole_limit() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(60);
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut watch = JoinWatch::default();
        assert_eq!(watch.stuck(at(0), limit), None, "no report yet");
        watch.observe("steady", at(0));
        assert_eq!(watch.stuck(at(100), limit), None);
        watch.observe("wait-join", at(100));
        watch.observe("wait-sync", at(130));
        assert_eq!(watch.stuck(at(159), limit), None);
        assert_eq!(
            watch.stuck(at(160), limit),
            Some(limit),
            "joining since the first report out of steady, whatever the phase"
        );
        watch.observe("steady", at(170));
        assert_eq!(watch.stuck(at(300), limit), None, "steady again");
    }
}
