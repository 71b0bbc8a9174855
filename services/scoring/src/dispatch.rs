//! Pushing to ESPs what Ricochet has for them: every row of the penalty log
//! goes to the `penalties.v1` topic, every complaint feed entry to
//! `feedback.v1`, and both, for ESPs with a webhook URL, to a signed
//! webhook (a body's `kind` says which). The log and the feed are the
//! outboxes and `penalty_dispatch` holds a cursor per channel and ESP,
//! advanced only after the channel accepted the rows: a failure or a
//! restart resends (at least once, in order), never loses.

use std::time::Duration;

use clickhouse::Client;
use rdkafka::producer::{FutureProducer, FutureRecord};
use ricochet_registry::RegistryHandle;
use ricochet_token::detached::sign_detached;
use ricochet_token::SigningKey;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::api::SIGNATURE_HEADER;
use crate::chain::{self, PenaltyEntry};
use crate::feed::{self, entry_json};
use crate::store::dispatch::{cursor, esps_in, save};

/// Penalty rows sent per channel, ESP and pass.
const PAGE: u64 = 100;
/// Complaint feed entries sent per channel, ESP and pass (the feed runs at
/// the complaint rate, thousands a second).
const FEED_PAGE: u64 = 1_000;
/// Longest wait between webhook retries.
const MAX_BACKOFF_MS: i64 = 300_000;

/// What one pass delivered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Rows produced to Kafka.
    pub kafka: usize,
    /// Rows accepted by webhooks.
    pub webhook: usize,
    /// Webhook deliveries that failed (to be retried).
    pub webhook_failures: usize,
}

/// What a dispatcher sends: each outbox has its own cursors and topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// The penalty log (`penalties.v1`, webhook kind `penalties`).
    Penalties,
    /// The complaint feed (`feedback.v1`, webhook kind `complaints`).
    Complaints,
}

impl Outbox {
    /// The webhook body's `kind`.
    fn kind(self) -> &'static str {
        match self {
            Outbox::Penalties => "penalties",
            Outbox::Complaints => "complaints",
        }
    }

    /// The cursor channel names (Kafka, webhook) in `penalty_dispatch`.
    fn channels(self) -> (&'static str, &'static str) {
        match self {
            Outbox::Penalties => ("kafka", "webhook"),
            Outbox::Complaints => ("feed-kafka", "feed-webhook"),
        }
    }

    fn table(self) -> &'static str {
        match self {
            Outbox::Penalties => "penalties",
            Outbox::Complaints => "complaint_feed",
        }
    }
}

/// One row of an outbox, ready to send.
struct Item {
    seq: u64,
    /// Kafka key: ESP and what the row is about.
    key: String,
    json: Value,
}

/// Adds one pass of `outbox` to the `dispatched` metric.
pub fn count(metrics: &crate::metrics::Metrics, outbox: Outbox, r: &DispatchReport) {
    use crate::metrics::Dispatched;
    for (outcome, n) in [
        (Dispatched::Kafka, r.kafka),
        (Dispatched::WebhookDelivered, r.webhook),
        (Dispatched::WebhookFailed, r.webhook_failures),
    ] {
        metrics
            .dispatched
            .with_label_values(&[outcome.label(outbox)])
            .inc_by(n as u64);
    }
}

/// Sends the penalty log and the complaint feed to Kafka and webhooks.
pub struct Dispatcher {
    client: Client,
    registry: RegistryHandle,
    key: SigningKey,
    producer: FutureProducer,
    topic: String,
    /// Topic of the complaint feed.
    pub feedback_topic: String,
    /// The ESPs this instance delivers to (and numbers the feed of).
    pub part: crate::partition::Partition,
    http: reqwest::Client,
}

/// The JSON of one penalty as ESPs receive it (topic message and webhook item).
pub fn penalty_json(e: &PenaltyEntry) -> Value {
    json!({
        "esp": e.esp, "seq": e.seq, "level": e.level, "key": e.sender,
        "sender": (e.level == "sender").then_some(&e.sender), "at_ms": e.at_ms,
        "from_tier": e.from_tier, "to_tier": e.to_tier, "rule": e.rule,
        "evidence": serde_json::from_str::<Value>(&e.evidence).unwrap_or(Value::Null),
        "prev_hash": e.prev_hash, "hash": e.hash,
    })
}

impl Dispatcher {
    /// A dispatcher writing to `topic` with `producer` and signing webhooks with `key`.
    pub fn new(
        client: Client,
        registry: RegistryHandle,
        key: SigningKey,
        producer: FutureProducer,
        topic: String,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Dispatcher {
            client,
            registry,
            key,
            producer,
            topic,
            feedback_topic: "feedback.v1".into(),
            part: crate::partition::Partition::WHOLE,
            http,
        }
    }

    async fn pending(
        &self,
        outbox: Outbox,
        esp: &str,
        after: u64,
    ) -> crate::error::Result<Vec<Item>> {
        Ok(match outbox {
            Outbox::Penalties => chain::read_after(&self.client, esp, after, PAGE)
                .await?
                .iter()
                .map(|r| Item {
                    seq: r.seq,
                    key: format!("{}/{}", r.esp, r.sender),
                    json: penalty_json(r),
                })
                .collect(),
            Outbox::Complaints => feed::read(&self.client, esp, after, FEED_PAGE)
                .await?
                .iter()
                .map(|e| Item {
                    seq: e.seq,
                    key: format!("{}/{}", e.esp, e.sender),
                    json: entry_json(e),
                })
                .collect(),
        })
    }

    /// One pass over every ESP with penalties: sends what each channel has not yet accepted.
    pub async fn run_once(&self, now_ms: i64) -> crate::error::Result<DispatchReport> {
        self.run_outbox(Outbox::Penalties, now_ms).await
    }

    /// One pass over every ESP with rows in `outbox`.
    pub async fn run_outbox(
        &self,
        outbox: Outbox,
        now_ms: i64,
    ) -> crate::error::Result<DispatchReport> {
        let esps = esps_in(&self.client, outbox.table(), self.part).await?;
        let mut report = DispatchReport::default();
        for esp in esps {
            report.kafka += self.produce(outbox, &esp, now_ms).await?;
            self.webhook(outbox, &esp, now_ms, &mut report).await?;
        }
        Ok(report)
    }

    /// Produces what the Kafka channel of `outbox` has not yet accepted for `esp`.
    async fn produce(&self, outbox: Outbox, esp: &str, now_ms: i64) -> crate::error::Result<usize> {
        let mut c = cursor(&self.client, outbox.channels().0, esp).await?;
        let rows = self.pending(outbox, esp, c.last_seq).await?;
        let topic = match outbox {
            Outbox::Penalties => &self.topic,
            Outbox::Complaints => &self.feedback_topic,
        };
        // Everything is queued at once and the acknowledgements awaited in
        // order: one round trip per row would cap the feed at a few hundred
        // rows a second. The cursor stops at the first row not acknowledged.
        let mut queued = Vec::with_capacity(rows.len());
        for r in &rows {
            let payload = r.json.to_string();
            let record = FutureRecord::to(topic).key(&r.key).payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => queued.push((r.seq, delivery)),
                Err((e, _)) => {
                    c.last_error = e.to_string();
                    break;
                }
            }
        }
        let mut sent = 0;
        for (seq, delivery) in queued {
            match delivery.await {
                Ok(Ok(_)) => {
                    c.last_seq = seq;
                    sent += 1;
                }
                Ok(Err((e, _))) => {
                    warn!(%esp, seq, error = %e, "{} not produced; retrying next pass", outbox.kind());
                    c.last_error = e.to_string();
                    break;
                }
                Err(_) => break,
            }
        }
        if sent > 0 {
            save(&self.client, c, now_ms).await?;
        }
        Ok(sent)
    }

    /// Posts what the webhook channel of `outbox` has not yet accepted for
    /// `esp`, if the ESP registered a URL and no backoff is running.
    async fn webhook(
        &self,
        outbox: Outbox,
        esp: &str,
        now_ms: i64,
        report: &mut DispatchReport,
    ) -> crate::error::Result<()> {
        let registry = self.registry.current();
        let Some(url) = registry.esp(esp).and_then(|e| e.webhook_url.clone()) else {
            return Ok(());
        };
        let mut c = cursor(&self.client, outbox.channels().1, esp).await?;
        if c.next_attempt_ms > now_ms {
            return Ok(());
        }
        let rows = self.pending(outbox, esp, c.last_seq).await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        let items: Vec<&Value> = rows.iter().map(|r| &r.json).collect();
        let body = serde_json::to_vec(&json!({"esp": esp, "kind": outbox.kind(), "items": items}))
            .expect("JSON");
        let signature = sign_detached(&self.key, &body).expect("signing");
        let outcome = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                info!(%esp, kind = outbox.kind(), through = last.seq, "webhook delivered");
                report.webhook += rows.len();
                c.last_seq = last.seq;
                c.attempts = 0;
                c.next_attempt_ms = 0;
                c.last_error.clear();
            }
            failure => {
                let why = match failure {
                    Ok(resp) => format!("HTTP {}", resp.status()),
                    Err(e) => e.to_string(),
                };
                c.attempts += 1;
                let backoff = (1_000i64 << c.attempts.min(20)).min(MAX_BACKOFF_MS);
                c.next_attempt_ms = now_ms + backoff;
                warn!(%esp, kind = outbox.kind(), attempts = c.attempts, retry_in_ms = backoff, error = %why, "webhook failed");
                c.last_error = why;
                report.webhook_failures += 1;
            }
        }
        save(&self.client, c, now_ms).await
    }
}
