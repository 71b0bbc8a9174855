//! What every Ricochet binary shares for telemetry: logging through
//! `tracing`, and Prometheus exposition. (Settings are clap sections: the
//! ClickHouse one in `ricochet-storage`, the Kafka one in `ricochet-kafka`.)

pub mod logging;
pub mod metrics;

pub use logging::init_logging;
