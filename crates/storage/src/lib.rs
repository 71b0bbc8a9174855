//! ClickHouse access shared by Ricochet's services and CLI: connection
//! settings ([`ClickHouseConfig`]) and the schema migration runner
//! ([`migrations`]).

pub mod config;
pub mod migrations;

pub use config::ClickHouseConfig;
pub use migrations::{Migration, MigrationError, Migrator};
