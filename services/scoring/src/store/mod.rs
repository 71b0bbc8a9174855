//! Every table scoring reads or writes, with its row types and SQL text:
//! a newcomer changing a table's shape finds all of scoring's uses here.
//!
//! - [`reader`]: the window counts of many senders from `complaints` and
//!   `deliveries` (one streaming pass each), the per-reporter cap's lookups
//!   for senders ([`reporters`]), and the campaign bursts ([`bursts`]).
//! - [`group_reporters`]: the same cap's lookups for the campaign, ESP and
//!   domain levels.
//! - [`snapshots`]: `reputation` (one row per key, window and run; the
//!   newest per window read back).
//! - [`senders`]: the campaigns and domains a sender carried.
//! - [`standing`]: `sender_standing` and `group_standing`.
//! - [`penalties`]: the `penalties` chain (heads, one ESP's chain, what
//!   each domain's carriers were told, when a key last changed tier).
//! - [`scope`]: the work lists `scoring_scope` and `scoring_suspects`
//!   (each instance's own copy, kept whole on the node it talks to, on a
//!   cluster too: every subquery over a work list is `GLOBAL IN`).
//! - [`dispatch`]: `penalty_dispatch`, each delivery channel's cursor.
//! - [`domain_books`]: `domain_books` and `domain_decisions`, how
//!   partitioned instances share the domain level.
//!
//! - [`feed`]: `complaint_feed`, and the reads of `complaints` that fill it.

pub mod bursts;
pub mod dispatch;
pub mod domain_books;
pub mod feed;
pub mod group_reporters;
pub mod penalties;
pub mod reader;
pub mod reporters;
pub mod scope;
pub mod senders;
pub mod snapshots;
pub mod standing;
mod tally;

use clickhouse::{Client, Row};
use ricochet_kafka::ComplaintCode;

/// Inserts `rows` into `table` in one insert (none if empty).
pub async fn insert<T>(client: &Client, table: &str, rows: &[T]) -> crate::error::Result<()>
where
    T: for<'a> Row<Value<'a> = T> + clickhouse::RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<T>(table).await?;
    for r in rows {
        insert.write(r).await?;
    }
    insert.end().await.map_err(Into::into)
}

/// A complaint code read from the `complaints` table; an unknown one is an
/// error, not a guess (the table was written by another version).
pub(crate) fn parse_code(code: &str) -> crate::error::Result<ComplaintCode> {
    (code.parse()).map_err(crate::ScoringError::stored::<ricochet_kafka::UnknownCode>(
        "complaints",
    ))
}
