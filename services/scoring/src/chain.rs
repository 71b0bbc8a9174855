//! The penalty log's hash chain: each row of one ESP carries the hash of the
//! ESP's previous row, so history cannot be rewritten, reordered or cut in the
//! middle without the chain breaking at that row.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The level name whose rows hash without a level field.
const SENDER_LEVEL: &str = "sender";

pub use crate::store::penalties::{read_after, PENALTY_COLUMNS};

/// The hash before an ESP's first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One tier change, as stored in `penalties`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct PenaltyEntry {
    /// ESP id: the chain this row belongs to.
    pub esp: String,
    /// Position in the ESP's chain, from 1.
    pub seq: u64,
    /// Reputation level of the change (`sender`, `esp`, `campaign`).
    pub level: String,
    /// The key at that level: sender id, empty for the ESP, campaign id.
    pub sender: String,
    /// When the change was decided, Unix milliseconds.
    pub at_ms: i64,
    /// Tier before.
    pub from_tier: String,
    /// Tier after.
    pub to_tier: String,
    /// The rule that fired.
    pub rule: String,
    /// The evidence (windows, counts, bounds) as canonical JSON.
    pub evidence: String,
    /// Hash of the ESP's previous row ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// Hash of this row.
    pub hash: String,
}

/// The hash of `entry` given its `prev_hash`: SHA-256 over every field,
/// each length-prefixed so no two different rows encode the same bytes.
/// Sender-level rows hash exactly as before levels existed, so chains
/// written then still verify; other rows add the level after `seq`.
pub fn entry_hash(e: &PenaltyEntry) -> String {
    let mut h = Sha256::new();
    let level: &[&[u8]] = if e.level == SENDER_LEVEL {
        &[]
    } else {
        &[e.level.as_bytes()]
    };
    let head = [
        e.prev_hash.as_bytes(),
        e.esp.as_bytes(),
        &e.seq.to_be_bytes(),
    ];
    for field in head.into_iter().chain(level.iter().copied()).chain([
        e.sender.as_bytes(),
        &e.at_ms.to_be_bytes(),
        e.from_tier.as_bytes(),
        e.to_tier.as_bytes(),
        e.rule.as_bytes(),
        e.evidence.as_bytes(),
    ]) {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    hex::encode(h.finalize())
}

/// Fills `prev_hash` and `hash` of a new row that follows `previous`.
pub fn seal(mut e: PenaltyEntry, previous: Option<&PenaltyEntry>) -> PenaltyEntry {
    e.seq = previous.map_or(1, |p| p.seq + 1);
    e.prev_hash = previous.map_or(GENESIS.to_string(), |p| p.hash.clone());
    e.hash = entry_hash(&e);
    e
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// A row's content does not match its own hash (it was edited).
    #[error("row seq {seq} was altered: its content does not match its hash")]
    Altered { seq: u64 },
    /// A row does not point at the row before it (rows removed, inserted or reordered).
    #[error("row seq {seq} does not follow the row before it (expected prev_hash {expected})")]
    Unlinked { seq: u64, expected: String },
    /// Sequence numbers skip or repeat.
    #[error("row seq {seq} follows seq {previous}: rows are missing or repeated")]
    Gap { seq: u64, previous: u64 },
}

/// Recomputes an ESP's chain (rows in `seq` order) and names the first broken row.
pub fn verify_chain(rows: &[PenaltyEntry]) -> Result<(), ChainError> {
    let mut expected_prev = GENESIS.to_string();
    let mut previous_seq = 0;
    for r in rows {
        if r.seq != previous_seq + 1 {
            return Err(ChainError::Gap {
                seq: r.seq,
                previous: previous_seq,
            });
        }
        if r.prev_hash != expected_prev {
            return Err(ChainError::Unlinked {
                seq: r.seq,
                expected: expected_prev,
            });
        }
        if entry_hash(r) != r.hash {
            return Err(ChainError::Altered { seq: r.seq });
        }
        expected_prev = r.hash.clone();
        previous_seq = r.seq;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<PenaltyEntry> {
        let mut rows: Vec<PenaltyEntry> = vec![];
        for i in 0..n {
            let e = PenaltyEntry {
                esp: "esp-a.example".into(),
                seq: 0,
                level: "sender".into(),
                sender: format!("s{i}"),
                at_ms: 1_790_000_000_000 + i as i64,
                from_tier: "ok".into(),
                to_tier: "warning".into(),
                rule: "rise-on-lower-bound".into(),
                evidence: format!("{{\"lower\":0.00{i}}}"),
                prev_hash: String::new(),
                hash: String::new(),
            };
            let sealed = seal(e, rows.last());
            rows.push(sealed);
        }
        rows
    }

    /// The hash as it was computed before levels existed.
    fn pre_level_hash(e: &PenaltyEntry) -> String {
        let mut h = Sha256::new();
        for field in [
            e.prev_hash.as_bytes(),
            e.esp.as_bytes(),
            &e.seq.to_be_bytes(),
            e.sender.as_bytes(),
            &e.at_ms.to_be_bytes(),
            e.from_tier.as_bytes(),
            e.to_tier.as_bytes(),
            e.rule.as_bytes(),
            e.evidence.as_bytes(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn sender_rows_hash_as_before_levels_and_the_level_is_covered() {
        let mut row = chain(1).remove(0);
        assert_eq!(
            row.hash,
            pre_level_hash(&row),
            "old chains must still verify"
        );
        row.level = "esp".into();
        let esp = entry_hash(&row);
        row.level = "campaign".into();
        let campaign = entry_hash(&row);
        assert!(esp != row.hash && campaign != row.hash && esp != campaign);
        // A level cannot be moved into the key: the fields are length-prefixed.
        row.level = "campaign".into();
        row.sender = String::new();
        let moved = PenaltyEntry {
            level: "campaig".into(),
            sender: "n".into(),
            ..row.clone()
        };
        assert_ne!(entry_hash(&row), entry_hash(&moved));
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(()));
    }

    #[test]
    fn an_edited_row_is_named() {
        let mut rows = chain(5);
        rows[2].to_tier = "ok".into();
        assert_eq!(verify_chain(&rows), Err(ChainError::Altered { seq: 3 }));
    }

    #[test]
    fn a_removed_or_reordered_row_is_named() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(
            verify_chain(&rows),
            Err(ChainError::Gap {
                seq: 3,
                previous: 1
            })
        );
        let mut rows = chain(5);
        rows.swap(1, 2);
        assert!(matches!(
            verify_chain(&rows),
            Err(ChainError::Gap { seq: 3, .. })
        ));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_link_to_the_next_row() {
        let mut rows = chain(5);
        rows[2].evidence = "{}".into();
        rows[2].hash = entry_hash(&rows[2]);
        assert!(matches!(
            verify_chain(&rows),
            Err(ChainError::Unlinked { seq: 4, .. })
        ));
    }
}
