//! What every Ricochet binary shares at start-up: reading settings from the
//! environment with documented defaults, and logging through `tracing`.

pub mod config;
pub mod logging;

pub use config::{env_or, env_parse, ConfigError};
pub use logging::init_logging;
