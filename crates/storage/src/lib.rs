//! ClickHouse access shared by Ricochet's services and CLI: connection
//! settings ([`ClickHouseConfig`]) and the schema migration runner
//! ([`migrations`]).

pub mod config;
pub mod migrations;
pub mod rows;

pub use config::{ClickHouseConfig, WireCompression};
pub use migrations::{Migration, MigrationError, MigrationReport, Migrator};
pub use rows::{ComplaintRow, DeliveryRow};
