//! Scoring partitioned by ESP: `N` instances share one database, and
//! instance `i` is the only writer of the ESPs with
//! `cityHash64(esp) % N = i` — their senders, ESP and campaign levels,
//! penalty chains, complaint feed and dispatch. The assignment is a pure
//! function of the ESP id and the instance count, so every instance and
//! every reader agrees on it without coordination; an instance that dies
//! is restarted with the same index and takes its ESPs back (a chain never
//! has two writers as long as no two instances run with the same index).
//!
//! A From domain spans ESPs. Each instance publishes what its own senders
//! add to each domain's book (`domain_books`); instance 0 also owns the
//! domain level: it sums those shares, decides the domain's tier and
//! records the decision (`domain_decisions`); every instance then tells
//! the ESPs it owns (in their chains) the tier in force of the domains they
//! carry, one run later than a single instance would.
//!
//! Each instance keeps its own work lists (`scoring_scope_<i>` and so on),
//! so instances may share a node.

use std::fmt;

/// Which share of the ESPs an instance scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// This instance's index, below `count`.
    pub index: u16,
    /// How many instances share the database.
    pub count: u16,
}

/// A partition that cannot be (index not below count, or no instance).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scoring instance {index} of {count}: the index must be below the count, and the count at least 1")]
pub struct BadPartition {
    index: u16,
    count: u16,
}

/// The work lists a run fills and reads: one set per instance.
pub const WORK_LISTS: [&str; 4] = [
    "scoring_scope",
    "scoring_suspects",
    "scoring_group_suspects",
    "scoring_reporter_candidates",
];

impl Partition {
    /// One instance scoring every ESP (the default).
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    /// Instance `index` of `count`.
    pub fn new(index: u16, count: u16) -> Result<Partition, BadPartition> {
        if count == 0 || index >= count {
            return Err(BadPartition { index, count });
        }
        Ok(Partition { index, count })
    }

    /// Whether more than one instance shares the ESPs.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// Whether this instance scores the domain level (instance 0).
    pub fn owns_domains(self) -> bool {
        self.index == 0
    }

    /// SQL condition on a row's `esp` column: the row is this instance's.
    pub fn esps(self) -> String {
        self.esps_of("esp")
    }

    /// SQL condition on the ESP id in `column`: it is this instance's.
    pub fn esps_of(self, column: &str) -> String {
        if self.is_split() {
            format!("cityHash64({column}) % {} = {}", self.count, self.index)
        } else {
            "1".to_string()
        }
    }

    /// This instance's copy of the work list `base` (one of [`WORK_LISTS`]).
    pub fn list(self, base: &str) -> String {
        if self.is_split() {
            format!("{base}_{}", self.index)
        } else {
            base.to_string()
        }
    }

    /// SQL creating this instance's work lists beside the migrated ones
    /// (nothing for a whole partition, which uses those).
    pub fn create_lists(self) -> Vec<String> {
        if !self.is_split() {
            return vec![];
        }
        WORK_LISTS
            .iter()
            .map(|base| format!("CREATE TABLE IF NOT EXISTS {} AS {base}", self.list(base)))
            .collect()
    }
}

impl Default for Partition {
    fn default() -> Self {
        Partition::WHOLE
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_partition_changes_no_sql() {
        let p = Partition::WHOLE;
        assert_eq!(p.esps(), "1");
        assert_eq!(p.list("scoring_scope"), "scoring_scope");
        assert!(p.create_lists().is_empty());
        assert!(p.owns_domains() && !p.is_split());
    }

    #[test]
    fn a_split_partition_filters_by_the_hash_and_keeps_its_own_lists() {
        let p = Partition::new(1, 3).unwrap();
        assert_eq!(p.esps(), "cityHash64(esp) % 3 = 1");
        assert_eq!(p.list("scoring_suspects"), "scoring_suspects_1");
        assert_eq!(p.create_lists().len(), WORK_LISTS.len());
        assert!(!p.owns_domains());
    }

    #[test]
    fn an_index_out_of_range_is_refused() {
        assert!(Partition::new(2, 2).is_err());
        assert!(Partition::new(0, 0).is_err());
        assert!(Partition::new(1, 2).is_ok());
    }
}
