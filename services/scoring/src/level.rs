//! Reputation levels: what a figure is about. A sender id is chosen by its
//! ESP, so a spammer can rename itself; the levels above it aggregate what
//! renaming cannot escape: the ESP's whole book, a campaign across every
//! sender id that carries it, and a From domain across every ESP.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The level of a reputation, standing or penalty row. In the tables the
/// `sender` column holds the key at that level (see [`Level::key_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One sender id of one ESP: `(esp, sender)`.
    Sender,
    /// All of one ESP's mail: `(esp)`, key empty.
    Esp,
    /// One campaign of one ESP across every sender id that carries it: `(esp, campaign)`.
    Campaign,
    /// One From domain (token `dom`) across every ESP: `(domain)`, ESP empty.
    Domain,
}

impl Level {
    /// Every level, narrowest first.
    pub const ALL: [Level; 4] = [Level::Sender, Level::Esp, Level::Campaign, Level::Domain];

    /// The wire and column name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Sender => "sender",
            Level::Esp => "esp",
            Level::Campaign => "campaign",
            Level::Domain => "domain",
        }
    }

    /// What the key of a row at this level names.
    pub fn key_name(self) -> &'static str {
        match self {
            Level::Sender => "sender id",
            Level::Esp => "nothing (the ESP itself)",
            Level::Campaign => "campaign id",
            Level::Domain => "From domain",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of [`Level::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reputation level {0:?} (expected sender, esp, campaign or domain)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        assert_eq!("dom".parse::<Level>(), Err(UnknownLevel("dom".into())));
    }
}
