//! Rust mirrors of Ricochet's tables, for typed inserts and selects.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One row of `complaints` (see `schemas/clickhouse/0001_complaints.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ComplaintRow {
    /// Token id: the deduplication key.
    pub jti: String,
    /// ESP id (token `iss`).
    pub esp: String,
    /// Sender id (token `sub`).
    pub sender: String,
    /// Submitting provider.
    pub provider: String,
    /// Complaint code.
    pub code: String,
    /// Declared nature (token `nat`).
    pub nature: String,
    /// Campaign (token `cmp`), empty if none.
    pub campaign: String,
    /// Recipient domain (token `rdm`).
    pub recipient_domain: String,
    /// The message's From domain (token `dom`), empty if none.
    pub from_domain: String,
    /// Opaque reporter pseudonym, empty if none.
    pub reporter: String,
    /// The token's recipient binding (`rcb`), empty for rows loaded before
    /// it was kept.
    pub rcb: String,
    /// Whether the provider proved the recipient binding.
    pub recipient_proven: bool,
    /// Token `iat`, Unix seconds.
    pub token_iat: u32,
    /// Token `exp`, Unix seconds.
    pub token_exp: u32,
    /// When the user complained, Unix milliseconds.
    pub reported_at: i64,
    /// When ingest accepted it, Unix milliseconds.
    pub received_at: i64,
    /// Source Kafka partition.
    pub kafka_partition: u32,
    /// Source Kafka offset.
    pub kafka_offset: u64,
}

/// One row of `deliveries` (see `schemas/clickhouse/0002_deliveries.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Reporting provider.
    pub provider: String,
    /// Campaign, empty for mail without one or a count not broken down.
    pub campaign: String,
    /// From domain, empty for mail without one or a count not broken down.
    pub from_domain: String,
    /// Start of the hour, Unix seconds.
    pub hour: u32,
    /// Messages delivered in that hour.
    pub delivered: u64,
    /// When ingest accepted the report, Unix milliseconds (newest wins).
    pub received_at: i64,
}
