//! ClickHouse access shared by Ricochet's services and CLI: connection
//! settings ([`ClickHouseConfig`]), the schema migration runner
//! ([`migrations`]) and the cluster form of the migrations ([`cluster`]).

pub mod cluster;
pub mod config;
pub mod migrations;
pub mod rows;

pub use config::{ClickHouseConfig, WireCompression};
pub use migrations::{Migration, MigrationError, MigrationReport, Migrator};
pub use rows::{ComplaintRow, DeliveryRow};
