//! What every Ricochet binary shares: reading settings from the environment
//! with documented defaults, logging through `tracing`, and Prometheus
//! exposition.

pub mod config;
pub mod logging;
pub mod metrics;

pub use config::{env_or, env_parse, ConfigError};
pub use logging::init_logging;
