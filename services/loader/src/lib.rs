//! Ricochet loader: `complaints.v1` and `deliveries.v1` into ClickHouse.
//!
//! Records are decoded and checked ([`decode`]); poison goes to the
//! dead-letter topic; good rows are batched by rows, bytes and age and
//! inserted with the `clickhouse` crate; offsets are committed only after
//! ClickHouse acknowledged the rows ([`pipeline`]); [`probe`] is what its
//! `/readyz` and `/metrics` report. Exact counts come from the
//! schema: every count is by token id (see `schemas/clickhouse/`).

pub mod config;
pub mod decode;
pub mod metrics;
pub mod pipeline;
pub mod probe;

pub use config::LoaderConfig;
