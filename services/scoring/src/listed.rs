//! The list mailbox providers poll: every ESP, sender, campaign and From
//! domain at `throttle` or above, with when it got there. An MTA caches it
//! and defers or rejects at SMTP time; it polls with the version it holds
//! and gets only what changed, or nothing (`304`) when nothing did.
//!
//! The board is rebuilt from the scorer's standings after each run, in
//! memory: a poll never waits on the database. Versions are the times of
//! the runs that changed the list; the changes of the last
//! [`HISTORY`] versions are kept, and an older or unknown version gets the
//! whole list again (so does every version after a restart).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use clickhouse::Client;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::policy::Tier;
use ricochet_kafka::Level;

/// How many versions' changes a board keeps for pollers behind.
pub const HISTORY: usize = 256;

/// The lowest tier listed: a provider's MTA slows or refuses mail from it.
pub const LISTED_FROM: Tier = Tier::Throttle;

/// The columns of each listed row, in order (documented in the body).
pub const COLUMNS: [&str; 5] = ["level", "esp", "key", "tier", "since_ms"];

/// What a listed row is about: level, ESP (empty for a domain) and key
/// (empty for an ESP).
pub type ListedKey = (Level, String, String);

/// A listed key's tier and since when (Unix ms) it holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    /// The tier in force (`throttle` or above).
    pub tier: Tier,
    /// When the key reached this tier.
    pub since_ms: i64,
}

/// The changes that made one version from the one before: a new listing,
/// or `None` for a key no longer listed.
#[derive(Debug, Clone)]
struct Version {
    version: i64,
    changes: Vec<(ListedKey, Option<Listing>)>,
}

/// The list at one version and the changes of the versions before it.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// Time (ms) of the run that last changed the list; 0 before the first run.
    pub version: i64,
    entries: BTreeMap<ListedKey, Listing>,
    history: VecDeque<Version>,
    /// The version before the oldest kept changes.
    base: i64,
}

impl Board {
    /// Whether a run has built the board yet.
    pub fn is_ready(&self) -> bool {
        self.version > 0
    }

    /// How many keys are listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The board after a run at `now_ms` whose standings are `standings`
    /// (any tier; those below [`LISTED_FROM`] are left out). A key newly
    /// listed or at a new tier dates from `known_since` if it has it (the
    /// penalty log, on the first build), else from `now_ms`. Returns `None`
    /// when nothing changed.
    pub fn next(
        &self,
        standings: impl IntoIterator<Item = (ListedKey, Tier)>,
        now_ms: i64,
        known_since: &BTreeMap<ListedKey, i64>,
    ) -> Option<Board> {
        let mut entries = BTreeMap::new();
        for (key, tier) in standings {
            if tier < LISTED_FROM {
                continue;
            }
            let since_ms = match self.entries.get(&key) {
                Some(old) if old.tier == tier => old.since_ms,
                _ => known_since.get(&key).copied().unwrap_or(now_ms),
            };
            entries.insert(key, Listing { tier, since_ms });
        }
        let mut changes: Vec<(ListedKey, Option<Listing>)> = entries
            .iter()
            .filter(|(k, l)| self.entries.get(*k) != Some(*l))
            .map(|(k, l)| (k.clone(), Some(*l)))
            .collect();
        changes.extend(
            self.entries
                .keys()
                .filter(|k| !entries.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        if self.is_ready() && changes.is_empty() {
            return None;
        }
        // A version is a run's time; runs are seconds apart, but two boards
        // must never share one.
        let version = now_ms.max(self.version + 1);
        let mut next = Board {
            version,
            entries,
            history: self.history.clone(),
            base: self.base,
        };
        if self.is_ready() {
            next.history.push_back(Version { version, changes });
            if next.history.len() > HISTORY {
                let dropped = next.history.pop_front().expect("longer than HISTORY");
                next.base = dropped.version;
            }
        } else {
            next.base = version;
        }
        Some(next)
    }

    /// The whole list as JSON.
    pub fn full_json(&self) -> Value {
        let listed: Vec<Value> = self.entries.iter().map(|(k, l)| row(k, l)).collect();
        json!({"version": self.version, "full": true, "columns": COLUMNS,
               "listed": listed, "removed": []})
    }

    /// What changed after version `since`, as JSON, or `None` when the board
    /// no longer knows (or never had) that version: the caller then needs
    /// the whole list.
    pub fn changes_json(&self, since: i64) -> Option<Value> {
        if since < self.base || since > self.version {
            return None;
        }
        // Later changes of a key replace earlier ones.
        let mut latest: BTreeMap<&ListedKey, Option<&Listing>> = BTreeMap::new();
        for v in self.history.iter().filter(|v| v.version > since) {
            for (key, listing) in &v.changes {
                latest.insert(key, listing.as_ref());
            }
        }
        let mut listed = vec![];
        let mut removed = vec![];
        for (key, listing) in latest {
            match listing {
                Some(l) => listed.push(row(key, l)),
                None => removed.push(json!([key.0, key.1, key.2])),
            }
        }
        Some(
            json!({"version": self.version, "since": since, "full": false,
                    "columns": COLUMNS, "listed": listed, "removed": removed}),
        )
    }
}

/// One listed row in [`COLUMNS`] order.
fn row((level, esp, key): &ListedKey, l: &Listing) -> Value {
    json!([level, esp, key, l.tier.as_str(), l.since_ms])
}

pub use crate::store::penalties::known_since;

/// Builds each run's board and hands it to the API.
pub struct Publisher {
    client: Client,
    tx: watch::Sender<Arc<Board>>,
}

impl Publisher {
    /// A publisher reading the penalty log through `client`, and the end
    /// the API reads boards from.
    pub fn new(client: Client) -> (Publisher, watch::Receiver<Arc<Board>>) {
        let (tx, rx) = watch::channel(Arc::new(Board::default()));
        (Publisher { client, tx }, rx)
    }

    /// The ClickHouse client the publisher reads through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether a board has been published yet.
    pub fn is_ready(&self) -> bool {
        self.tx.borrow().is_ready()
    }

    /// Publishes the board of a successful run at `now_ms` whose standings
    /// are `standings`; returns how many keys are listed.
    pub async fn publish(
        &self,
        standings: Vec<(ListedKey, Tier)>,
        now_ms: i64,
    ) -> crate::error::Result<usize> {
        let current = self.tx.borrow().clone();
        let since = if current.is_ready() {
            BTreeMap::new()
        } else {
            known_since(&self.client).await?
        };
        match current.next(standings, now_ms, &since) {
            Some(next) => {
                let n = next.len();
                self.tx.send_replace(Arc::new(next));
                Ok(n)
            }
            None => Ok(current.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(level: Level, esp: &str, key: &str) -> ListedKey {
        (level, esp.to_string(), key.to_string())
    }

    #[test]
    fn only_throttle_and_above_are_listed_with_the_time_they_got_there() {
        let s1 = key(Level::Sender, "esp-a", "s1");
        let esp = key(Level::Esp, "esp-a", "");
        let since = BTreeMap::from([(esp.clone(), 500)]);
        let standings = [
            (s1.clone(), Tier::Throttle),
            (esp.clone(), Tier::Suspend),
            (key(Level::Sender, "esp-a", "s2"), Tier::Warning),
        ];
        let b1 = Board::default().next(standings, 1_000, &since).unwrap();
        assert_eq!((b1.version, b1.len()), (1_000, 2));
        let full = b1.full_json();
        assert_eq!(
            full["listed"][0],
            json!(["sender", "esp-a", "s1", "throttle", 1_000])
        );
        assert_eq!(
            full["listed"][1],
            json!(["esp", "esp-a", "", "suspend", 500])
        );
        // The same standings change nothing: no new version.
        let again = [(s1.clone(), Tier::Throttle), (esp.clone(), Tier::Suspend)];
        assert!(b1.next(again, 2_000, &since).is_none());
    }

    #[test]
    fn a_poller_gets_only_what_changed_after_its_version() {
        let (s1, s2, c1) = (
            key(Level::Sender, "esp-a", "s1"),
            key(Level::Sender, "esp-a", "s2"),
            key(Level::Campaign, "esp-a", "c1"),
        );
        let none = BTreeMap::new();
        let b1 = Board::default()
            .next([(s1.clone(), Tier::Throttle)], 1_000, &none)
            .unwrap();
        let b2 = b1
            .next(
                [(s1.clone(), Tier::Suspend), (s2.clone(), Tier::Throttle)],
                2_000,
                &none,
            )
            .unwrap();
        let b3 = b2
            .next(
                [(s2.clone(), Tier::Throttle), (c1.clone(), Tier::Exclude)],
                3_000,
                &none,
            )
            .unwrap();
        let since_1 = b3.changes_json(1_000).unwrap();
        assert_eq!(since_1["full"], json!(false));
        assert_eq!(
            since_1["listed"],
            json!([
                ["sender", "esp-a", "s2", "throttle", 2_000],
                ["campaign", "esp-a", "c1", "exclude", 3_000]
            ])
        );
        assert_eq!(since_1["removed"], json!([["sender", "esp-a", "s1"]]));
        let since_2 = b3.changes_json(2_000).unwrap();
        assert_eq!(since_2["listed"].as_array().unwrap().len(), 1);
        assert_eq!(b3.changes_json(3_000).unwrap()["listed"], json!([]));
        // Versions the board never had or no longer keeps: the whole list.
        assert!(b3.changes_json(999).is_none());
        assert!(b3.changes_json(3_001).is_none());
    }

    #[test]
    fn old_versions_are_forgotten_after_the_history() {
        let none = BTreeMap::new();
        let s = |n: usize| key(Level::Sender, "esp-a", &format!("s{n}"));
        let mut board = Board::default()
            .next([(s(0), Tier::Throttle)], 1, &none)
            .unwrap();
        for n in 1..=HISTORY + 1 {
            board = board
                .next([(s(n), Tier::Throttle)], 1 + n as i64, &none)
                .unwrap();
        }
        assert!(
            board.changes_json(1).is_none(),
            "the first version is forgotten"
        );
        assert!(board.changes_json(3).is_some());
    }
}
