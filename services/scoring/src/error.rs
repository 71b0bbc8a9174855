//! What can stop a scoring run, a feed pass or a dispatch.

use thiserror::Error;

/// Why scoring could not finish a piece of work.
#[derive(Debug, Error)]
pub enum ScoringError {
    /// ClickHouse refused a query or an insert, or could not be reached.
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::error::Error),
    /// A stored row holds a value this version does not know (a tier, a
    /// level): the table was written by another version, or by hand.
    #[error("{table} holds an unknown value: {detail}")]
    Stored {
        /// The table read.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// More distinct names (providers, codes) than one run can count.
    #[error("too many to count in one run: {0}")]
    TooMany(String),
    /// The rows changed under the run (a name appeared mid-read, rows came
    /// out of order); the next run reads them again.
    #[error("the data changed while it was read: {0}")]
    Moved(String),
}

impl ScoringError {
    /// For `map_err`: an unknown value read from `table`.
    pub fn stored<E: std::fmt::Display>(table: &'static str) -> impl Fn(E) -> ScoringError {
        move |e| ScoringError::Stored {
            table,
            detail: e.to_string(),
        }
    }
}

/// A result of scoring's work.
pub type Result<T> = std::result::Result<T, ScoringError>;
