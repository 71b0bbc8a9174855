//! Loader settings: flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::time::Duration;

/// Ricochet loader: consumes accepted complaints and delivery counts from
/// Kafka and writes them to ClickHouse, committing offsets only after
/// ClickHouse acknowledged the rows.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "ricochet-loader", version)]
pub struct LoaderConfig {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "RICOCHET_LOADER_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// HTTP connection limits.
    #[command(flatten)]
    pub server: ricochet_http::ServerArgs,
    /// Where the brokers are.
    #[command(flatten)]
    pub kafka: ricochet_kafka::KafkaConfig,
    /// Where ClickHouse is.
    #[command(flatten)]
    pub clickhouse: ricochet_storage::ClickHouseConfig,
    /// Consumer group; every loader instance of one deployment uses the same.
    #[arg(long, env = "RICOCHET_LOADER_GROUP", default_value = "ricochet-loader")]
    pub group: String,
    /// Static group membership (KIP-345): a stable id per loader instance (e.g.
    /// the pod name) lets a restarted loader take its partitions back at once
    /// instead of waiting for the group to notice the old process died.
    #[arg(long, env = "RICOCHET_LOADER_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Topic of accepted complaints.
    #[arg(long, env = "RICOCHET_TOPIC_COMPLAINTS", default_value = ricochet_kafka::topics::COMPLAINTS)]
    pub complaints_topic: String,
    /// Topic of delivery counts.
    #[arg(long, env = "RICOCHET_TOPIC_DELIVERIES", default_value = ricochet_kafka::topics::DELIVERIES)]
    pub deliveries_topic: String,
    /// Where records that cannot be decoded go, with the reason and source offset.
    #[arg(long, env = "RICOCHET_TOPIC_DEAD_LETTER", default_value = ricochet_kafka::topics::DEAD_LETTER)]
    pub dead_letter_topic: String,
    /// Flush a batch at this many rows.
    #[arg(long, env = "RICOCHET_LOADER_BATCH_ROWS", default_value_t = 50_000)]
    pub batch_rows: usize,
    /// Flush a batch at this many bytes of Kafka payload.
    #[arg(long, env = "RICOCHET_LOADER_BATCH_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub batch_bytes: usize,
    /// Flush a batch this many milliseconds after its first record.
    #[arg(long, env = "RICOCHET_LOADER_BATCH_MS", default_value_t = 1000)]
    pub batch_ms: u64,
    /// Longest wait between retries of a failed ClickHouse insert, milliseconds.
    #[arg(long, env = "RICOCHET_LOADER_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub max_backoff_ms: u64,
    /// Replace the Kafka consumer when it has been joining its group (no
    /// steady assignment) for this many seconds; 0 never does. A broker that
    /// lost track of the group can leave a member waiting for minutes (seen
    /// with tansu 0.6.0 after a restart); a new consumer joins at once.
    #[arg(long, env = "RICOCHET_LOADER_REJOIN_AFTER_SECS", default_value_t = 60)]
    pub rejoin_after_secs: u64,
}

impl LoaderConfig {
    /// The batch age limit.
    pub fn batch_age(&self) -> Duration {
        Duration::from_millis(self.batch_ms)
    }

    /// The retry backoff cap.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }

    /// How long a consumer may be joining its group before it is replaced.
    pub fn rejoin_after(&self) -> Option<Duration> {
        (self.rejoin_after_secs > 0).then(|| Duration::from_secs(self.rejoin_after_secs))
    }
}
