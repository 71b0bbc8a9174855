//! Ingest settings: command-line flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Ricochet ingest: mailbox providers submit complaint tokens and delivery counts.
///
/// Every complaint is verified (caller, token signature, expiry, recipient
/// domain) and acknowledged only once it is durably in Kafka.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "ricochet-ingest", version)]
pub struct IngestConfig {
    /// Address to listen on.
    #[arg(long, env = "RICOCHET_INGEST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Participants registry file (checked for changes every 2 s).
    #[arg(long, env = "RICOCHET_REGISTRY", default_value = "registry.toml")]
    pub registry: PathBuf,
    /// The `aud` providers' bearer tokens must carry.
    #[arg(
        long,
        env = "RICOCHET_INGEST_AUDIENCE",
        default_value = "ricochet-ingest"
    )]
    pub audience: String,
    /// Tolerated clock skew for token times, seconds.
    #[arg(long, env = "RICOCHET_CLOCK_SKEW_SECS", default_value_t = 60)]
    pub clock_skew_secs: i64,
    /// Most items in one request (413 beyond).
    #[arg(long, env = "RICOCHET_INGEST_MAX_ITEMS", default_value_t = 1000)]
    pub max_items: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "RICOCHET_INGEST_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests handled at once; more get 503 `overloaded` at once. It bounds
    /// memory (each body at most --max-body-bytes) and queueing latency: at 64,
    /// an admitted batch of 200 waits about a second at capacity on 2 cores.
    #[arg(long, env = "RICOCHET_INGEST_MAX_IN_FLIGHT", default_value_t = 64)]
    pub max_in_flight: usize,
    /// HTTP connection limits.
    #[command(flatten)]
    pub server: ricochet_http::ServerArgs,
    /// Where the brokers are (accepted complaints and deliveries go there).
    #[command(flatten)]
    pub kafka: ricochet_kafka::KafkaConfig,
    /// Sustained requests per second allowed per provider (429 beyond).
    #[arg(long, env = "RICOCHET_INGEST_RATE", default_value_t = 200)]
    pub rate_per_sec: u32,
    /// Burst of requests allowed per provider above the sustained rate.
    #[arg(long, env = "RICOCHET_INGEST_BURST", default_value_t = 400)]
    pub burst: u32,
    /// Whole-request deadline in milliseconds, including reading the body and Kafka acks.
    #[arg(
        long,
        env = "RICOCHET_INGEST_REQUEST_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub request_timeout_ms: u64,
    /// How long to wait for Kafka to acknowledge a batch before answering 503, ms.
    #[arg(
        long,
        env = "RICOCHET_INGEST_KAFKA_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub kafka_timeout_ms: u64,
    /// How long the producer waits to fill a batch before sending it to
    /// Kafka, ms: a longer wait sends fewer, larger requests (less CPU per
    /// complaint) and adds at most that much to each answer.
    #[arg(long, env = "RICOCHET_INGEST_KAFKA_LINGER_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub kafka_linger_ms: u16,
    /// Recipient policy directory (`DOMAIN.json` and their history, as
    /// `ricochet policy publish` writes it), checked for changes every 2 s:
    /// served at /.well-known/ricochet-policy/DOMAIN and used to refuse
    /// `policy-violation` complaints the policy contradicts.
    #[arg(long, env = "RICOCHET_POLICY_DIR")]
    pub policies: Option<PathBuf>,
    /// Topic accepted complaints go to.
    #[arg(long, env = "RICOCHET_TOPIC_COMPLAINTS", default_value = ricochet_kafka::topics::COMPLAINTS)]
    pub complaints_topic: String,
    /// Topic delivery counts go to.
    #[arg(long, env = "RICOCHET_TOPIC_DELIVERIES", default_value = ricochet_kafka::topics::DELIVERIES)]
    pub deliveries_topic: String,
    /// Where signatures are checked: `pool` (a dedicated thread pool, items of a
    /// request in parallel), `blocking` (tokio's blocking threads, one request
    /// per thread) or `inline` (on the async reactor; for comparison only).
    #[arg(long, env = "RICOCHET_INGEST_VERIFY_MODE", value_enum, default_value_t = VerifyMode::Pool)]
    pub verify_mode: VerifyMode,
    /// How Ed25519 signatures are checked: `batch` (the items of a request in
    /// batches of --verify-batch, one equation each; about 2-3x the rate) or
    /// `single` (one at a time). Verdicts are the same either way; P-256
    /// signatures are always checked one at a time.
    #[arg(long, env = "RICOCHET_INGEST_SIGNATURE_CHECK", value_enum, default_value_t = SignatureCheck::Batch)]
    pub signature_check: SignatureCheck,
    /// Most signatures in one batch equation. A bad signature makes its batch
    /// fall back to single checks (reusing the batch's work: an all-bad batch
    /// costs about 1.1-1.3x single checks); larger batches verify faster.
    #[arg(long, env = "RICOCHET_INGEST_VERIFY_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub verify_batch: u16,
    /// Threads verifying signatures (0 = one per core).
    #[arg(long, env = "RICOCHET_INGEST_VERIFY_THREADS", default_value_t = 0)]
    pub verify_threads: usize,
}

impl IngestConfig {
    /// The request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long the producer fills a batch.
    pub fn kafka_linger(&self) -> Duration {
        Duration::from_millis(self.kafka_linger_ms.into())
    }

    /// The Kafka acknowledgement deadline.
    pub fn kafka_timeout(&self) -> Duration {
        Duration::from_millis(self.kafka_timeout_ms)
    }
}

/// Where signature verification runs (see `ricochet bench ingest` for the comparison).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// A dedicated rayon pool; one request's items are checked in parallel.
    Pool,
    /// `tokio::task::spawn_blocking`; one request's items checked on one thread.
    Blocking,
    /// On the async worker threads (blocks the reactor while verifying).
    Inline,
}

/// How Ed25519 signatures are checked (see `ricochet bench ingest`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Many signatures in one batch equation; bad ones found by single checks.
    Batch,
    /// One signature at a time.
    Single,
}
