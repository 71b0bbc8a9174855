//! Scoring settings: flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Ricochet scoring: computes sender reputation and penalty tiers from
/// ClickHouse on an interval, records every tier change in the hash-chained
/// `penalties` table, and serves the ESP API (offenders, reputation), with
/// every response signed by Ricochet's key.
#[derive(clap::Parser, Debug)]
#[command(name = "ricochet-scoring", version)]
pub struct ScoringConfig {
    /// Seconds between scoring runs (fractions allowed, e.g. 0.25).
    #[arg(long, env = "RICOCHET_SCORING_INTERVAL_SECS", default_value_t = 10.0)]
    pub interval_secs: f64,
    /// Every how many runs one rescores every sender rather than only the
    /// dirty ones (a safety net; 0: only the first run).
    #[arg(long, env = "RICOCHET_SCORING_FULL_EVERY", default_value_t = 360)]
    pub full_every: u32,
    /// Run once and exit (no API).
    #[arg(long)]
    pub once: bool,
    /// This instance's index when several scoring instances share the
    /// database: it scores (and feeds, and delivers to) the ESPs with
    /// cityHash64(esp) % instances = instance; instance 0 also scores the
    /// From-domain level. Run each index exactly once (two instances with
    /// one index would both write those ESPs' chains).
    #[arg(long, env = "RICOCHET_SCORING_INSTANCE", default_value_t = 0)]
    pub instance: u16,
    /// How many scoring instances share the database (see --instance).
    #[arg(long, env = "RICOCHET_SCORING_INSTANCES", default_value_t = 1)]
    pub instances: u16,
    /// Address of the ESP API.
    #[arg(
        long,
        env = "RICOCHET_SCORING_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// Participants registry (ESPs authenticate against it).
    #[arg(long, env = "RICOCHET_REGISTRY", default_value = "registry.toml")]
    pub registry: PathBuf,
    /// Ricochet's private JWK, which signs API responses and webhooks (`ricochet keys new`).
    #[arg(long, env = "RICOCHET_SIGNING_KEY", required_unless_present = "once")]
    pub signing_key: Option<PathBuf>,
    /// Scoring policy file (TOML: thresholds per tier and level, minimum
    /// volume, weights, caps, cool-down, burst rule; see
    /// deploy/scoring-policy.toml). Checked before every run and reloaded
    /// when it changes; an invalid new version is logged and the policy in
    /// force kept. Without it, the documented defaults apply.
    #[arg(long, env = "RICOCHET_SCORING_POLICY")]
    pub policy: Option<PathBuf>,
    /// Topic every tier change is produced to.
    #[arg(long, env = "RICOCHET_TOPIC_PENALTIES", default_value = ricochet_kafka::topics::PENALTIES)]
    pub penalties_topic: String,
    /// Topic every complaint feed entry is produced to.
    #[arg(long, env = "RICOCHET_TOPIC_FEEDBACK", default_value = ricochet_kafka::topics::FEEDBACK)]
    pub feedback_topic: String,
    /// Milliseconds between passes of the complaint feed (new complaints to
    /// `complaint_feed`, then to `feedback.v1` and webhooks).
    #[arg(long, env = "RICOCHET_FEED_INTERVAL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub feed_interval_ms: u64,
    /// Tolerated clock skew for the times in API bearer tokens, seconds.
    #[arg(long, env = "RICOCHET_CLOCK_SKEW_SECS", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..=3600))]
    pub clock_skew_secs: i64,
    /// HTTP connection limits.
    #[command(flatten)]
    pub server: ricochet_http::ServerArgs,
    /// Where ClickHouse is.
    #[command(flatten)]
    pub clickhouse: ricochet_storage::ClickHouseConfig,
    /// Where the brokers are (penalties and the complaint feed are produced there).
    #[command(flatten)]
    pub kafka: ricochet_kafka::KafkaConfig,
}
