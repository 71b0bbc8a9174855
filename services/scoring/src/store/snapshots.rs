//! Writing reputation snapshots to ClickHouse in column blocks (the Native
//! format). A full run writes one row per sender and window, millions of
//! them. Parsing those as rows into `reputation`'s LowCardinality and Map
//! columns cost ClickHouse 3.7 s per 3M rows, the same data in column blocks
//! 1.4 s (2 cores, BENCHMARKS.md). The blocks are encoded here, column by
//! column as rows come: the client crate's general block builder cost more
//! on our side than it saved on the server's.
//!
//! Native, as sent over HTTP: per block, the column count and row count
//! (LEB128), then per column its name and type (LEB128 length + bytes) and
//! its values: fixed-width numbers little-endian back to back; strings each
//! as LEB128 length + bytes; a map as one UInt64 per row (the running count
//! of entries), then all keys, then all values. The server converts String
//! to the table's LowCardinality(String) column by column.

use bytes::{BufMut, BytesMut};
use clickhouse::insert_formatted::InsertFormatted;
use clickhouse::{Client, Row};
use serde::Deserialize;

use ricochet_kafka::Level;

/// Rows per block: per-block costs vanish, and a block stays a few MB.
const BLOCK_ROWS: usize = 32_768;

/// One snapshot: a key's assessment in one window.
pub struct Snapshot<'a> {
    /// Level of the key.
    pub level: Level,
    /// Window name (`1h`, `24h`, ...).
    pub window: &'a str,
    /// Messages delivered in the window.
    pub delivered: u64,
    /// Complaints in all.
    pub complaints: u64,
    /// Complaints per code.
    pub by_code: Vec<(&'a str, u64)>,
    /// Complaints per provider.
    pub by_provider: Vec<(&'a str, u64)>,
    /// Weighted complaints after caps.
    pub weighted: f64,
    /// Weighted complaint rate.
    pub rate: f64,
    /// Lower Wilson bound of the rate.
    pub lower: f64,
    /// Upper Wilson bound of the rate.
    pub upper: f64,
    /// Tier the window supports, or `insufficient-data`.
    pub tier: &'static str,
}

/// Appends a LEB128 unsigned integer.
fn put_varuint(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// Appends a string as LEB128 length + bytes.
fn put_string(buf: &mut BytesMut, s: &str) {
    put_varuint(buf, s.len() as u64);
    buf.put_slice(s.as_bytes());
}

/// A `Map(String, UInt64)` column: running entry counts, keys, values.
#[derive(Default)]
struct MapColumn {
    ends: BytesMut,
    keys: BytesMut,
    values: BytesMut,
    entries: u64,
}

impl MapColumn {
    fn push(&mut self, counts: &[(&str, u64)]) {
        for (name, n) in counts {
            put_string(&mut self.keys, name);
            self.values.put_u64_le(*n);
        }
        self.entries += counts.len() as u64;
        self.ends.put_u64_le(self.entries);
    }
}

/// The encoded columns of the rows not sent yet, in `reputation`'s order.
#[derive(Default)]
struct Block {
    rows: u64,
    esp: BytesMut,
    level: BytesMut,
    sender: BytesMut,
    window: BytesMut,
    computed_at: BytesMut,
    delivered: BytesMut,
    complaints: BytesMut,
    by_code: MapColumn,
    by_provider: MapColumn,
    weighted: BytesMut,
    rate: BytesMut,
    lower: BytesMut,
    upper: BytesMut,
    tier: BytesMut,
}

impl Block {
    fn push(&mut self, esp: &str, sender: &str, computed_at: i64, s: &Snapshot<'_>) {
        self.rows += 1;
        put_string(&mut self.esp, esp);
        put_string(&mut self.level, s.level.as_str());
        put_string(&mut self.sender, sender);
        put_string(&mut self.window, s.window);
        self.computed_at.put_i64_le(computed_at);
        self.delivered.put_u64_le(s.delivered);
        self.complaints.put_u64_le(s.complaints);
        self.by_code.push(&s.by_code);
        self.by_provider.push(&s.by_provider);
        self.weighted.put_f64_le(s.weighted);
        self.rate.put_f64_le(s.rate);
        self.lower.put_f64_le(s.lower);
        self.upper.put_f64_le(s.upper);
        put_string(&mut self.tier, s.tier);
    }

    /// The block in Native format.
    fn encode(self) -> BytesMut {
        const MAP: &str = "Map(String, UInt64)";
        let columns: [(&str, &str, Vec<BytesMut>); 14] = [
            ("esp", "String", vec![self.esp]),
            ("level", "String", vec![self.level]),
            ("sender", "String", vec![self.sender]),
            ("window", "String", vec![self.window]),
            (
                "computed_at",
                "DateTime64(3, 'UTC')",
                vec![self.computed_at],
            ),
            ("delivered", "UInt64", vec![self.delivered]),
            ("complaints", "UInt64", vec![self.complaints]),
            (
                "complaints_by_code",
                MAP,
                vec![self.by_code.ends, self.by_code.keys, self.by_code.values],
            ),
            (
                "complaints_by_provider",
                MAP,
                vec![
                    self.by_provider.ends,
                    self.by_provider.keys,
                    self.by_provider.values,
                ],
            ),
            ("weighted", "Float64", vec![self.weighted]),
            ("rate", "Float64", vec![self.rate]),
            ("lower", "Float64", vec![self.lower]),
            ("upper", "Float64", vec![self.upper]),
            ("tier", "String", vec![self.tier]),
        ];
        let size: usize = columns
            .iter()
            .flat_map(|(_, _, parts)| parts.iter().map(BytesMut::len))
            .sum();
        let mut out = BytesMut::with_capacity(size + 512);
        put_varuint(&mut out, columns.len() as u64);
        put_varuint(&mut out, self.rows);
        for (name, data_type, parts) in columns {
            put_string(&mut out, name);
            put_string(&mut out, data_type);
            for part in parts {
                out.put_slice(&part);
            }
        }
        out
    }
}

/// An open insert into `reputation`, every row stamped with one run's time.
pub struct SnapshotWriter {
    insert: InsertFormatted,
    computed_at: i64,
    block: Block,
}

impl SnapshotWriter {
    /// Opens an insert into `reputation` of snapshots computed at `computed_at` (ms).
    pub fn new(client: &Client, computed_at: i64) -> Self {
        SnapshotWriter {
            insert: client.insert_formatted_with("INSERT INTO reputation FORMAT Native"),
            computed_at,
            block: Block::default(),
        }
    }

    /// Adds a snapshot of `key` (at the snapshot's level) of `esp`; sends
    /// a block when one is full.
    pub async fn write(
        &mut self,
        esp: &str,
        sender: &str,
        snapshot: &Snapshot<'_>,
    ) -> crate::error::Result<()> {
        self.block.push(esp, sender, self.computed_at, snapshot);
        if self.block.rows as usize >= BLOCK_ROWS {
            self.send().await?;
        }
        Ok(())
    }

    /// Sends the rows held as one block.
    async fn send(&mut self) -> crate::error::Result<()> {
        let block = std::mem::take(&mut self.block);
        if block.rows == 0 {
            return Ok(());
        }
        self.insert
            .send(block.encode().freeze())
            .await
            .map_err(Into::into)
    }

    /// Sends the last rows and completes the insert.
    pub async fn end(mut self) -> crate::error::Result<()> {
        self.send().await?;
        self.insert.end().await.map_err(Into::into)
    }
}

/// The newest snapshot of one window of a key (read back for the API).
#[derive(Row, Deserialize)]
pub struct ReputationRow {
    pub window: String,
    pub delivered: u64,
    pub complaints: u64,
    pub complaints_by_code: Vec<(String, u64)>,
    pub complaints_by_provider: Vec<(String, u64)>,
    pub weighted: f64,
    pub rate: f64,
    pub lower: f64,
    pub upper: f64,
    pub tier: String,
    pub computed_at: i64,
}

/// The newest snapshot per window of `key` at `level` of `esp`.
pub async fn newest(
    client: &Client,
    level: Level,
    esp: &str,
    key: &str,
) -> crate::error::Result<Vec<ReputationRow>> {
    client
        .query("SELECT toString(r.window) AS window, argMax(r.delivered, r.computed_at) AS delivered, \
                  argMax(r.complaints, r.computed_at) AS complaints, \
                  argMax(r.complaints_by_code, r.computed_at) AS complaints_by_code, \
                  argMax(r.complaints_by_provider, r.computed_at) AS complaints_by_provider, \
                  argMax(r.weighted, r.computed_at) AS weighted, argMax(r.rate, r.computed_at) AS rate, \
                  argMax(r.lower, r.computed_at) AS lower, argMax(r.upper, r.computed_at) AS upper, \
                  argMax(toString(r.tier), r.computed_at) AS tier, max(r.computed_at) AS computed_at \
           FROM reputation AS r WHERE r.esp = ? AND r.sender = ? AND r.level = ? \
           GROUP BY r.window ORDER BY window")
        .bind(esp)
        .bind(key)
        .bind(level.as_str())
        .fetch_all()
        .await
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varuints_are_leb128() {
        let mut buf = BytesMut::new();
        for n in [0, 1, 127, 128, 300, u64::MAX] {
            put_varuint(&mut buf, n);
        }
        let expected: &[u8] = &[
            0x00, 0x01, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x01,
        ];
        assert_eq!(&buf[..], expected);
    }

    #[test]
    fn a_map_column_holds_running_counts_then_keys_then_values() {
        let mut m = MapColumn::default();
        m.push(&[("a", 3), ("bc", 4)]);
        m.push(&[]);
        m.push(&[("d", 5)]);
        let ends: Vec<u64> = m
            .ends
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(ends, [2, 2, 3]);
        assert_eq!(&m.keys[..], b"\x01a\x02bc\x01d");
        assert_eq!(m.values.len(), 24);
    }
}
