//! The windows every key is scored over: four, nested, shortest first (by
//! default 1h, 24h, 7d, 30d). A key's evidence is the most severe tier any
//! window with enough volume supports: short windows catch bursts, long ones
//! slow, steady abuse. Their lengths are policy; their number is not (a
//! complaint's window is packed into two bits of the counts scoring reads).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How many windows there are.
pub const COUNT: usize = 4;

/// The longest a window may be: the longest a token lives.
pub const MAX_SECS: i64 = 60 * 86_400;

/// One window: its name (`1h`, `7d`, ...) and length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The name snapshots and evidence use: a whole number of hours or days.
    pub name: String,
    /// Length in seconds.
    pub secs: i64,
}

/// The four windows, shortest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows([Span; COUNT]);

impl Default for Windows {
    fn default() -> Self {
        Windows::parse(&["1h", "24h", "7d", "30d"]).expect("the default windows are valid")
    }
}

/// Why a list of windows is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadWindows(pub String);

impl fmt::Display for BadWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Seconds of a window name: `<n>h` or `<n>d`.
fn seconds(name: &str) -> Option<i64> {
    let (n, unit) = name.split_at(name.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    match unit {
        "h" => n.checked_mul(3_600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
}

impl Windows {
    /// Four window names, shortest first, each `<n>h` or `<n>d`, rising,
    /// at most 60 days.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Windows, BadWindows> {
        if names.len() != COUNT {
            return Err(BadWindows(format!(
                "expected {COUNT} windows, shortest first; found {}",
                names.len()
            )));
        }
        let mut spans = vec![];
        for name in names {
            let name = name.as_ref();
            let secs = seconds(name).ok_or_else(|| {
                BadWindows(format!(
                    "{name:?} is not a window: a whole number of hours or days, as \"24h\" or \"7d\""
                ))
            })?;
            if secs > MAX_SECS {
                return Err(BadWindows(format!(
                    "{name:?} is longer than 60 days, the longest a token lives"
                )));
            }
            spans.push(Span {
                name: name.to_string(),
                secs,
            });
        }
        if spans.windows(2).any(|w| w[0].secs >= w[1].secs) {
            return Err(BadWindows(
                "windows must rise, each longer than the one before".into(),
            ));
        }
        let spans: [Span; COUNT] = spans.try_into().expect("checked: four");
        Ok(Windows(spans))
    }

    /// The windows, shortest first.
    pub fn spans(&self) -> &[Span; COUNT] {
        &self.0
    }

    /// Length of window `i` in ms.
    pub fn ms(&self, i: usize) -> i64 {
        self.0[i].secs * 1000
    }

    /// Length of the longest window in ms: how far back a run reads.
    pub fn longest_ms(&self) -> i64 {
        self.ms(COUNT - 1)
    }

    /// The names, comma-separated (explanations).
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|s| s.name.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_hours_or_days_and_must_rise() {
        let w = Windows::default();
        assert_eq!(w.names(), "1h, 24h, 7d, 30d");
        assert_eq!(w.longest_ms(), 30 * 86_400_000);
        assert!(Windows::parse(&["2h", "2d", "14d", "60d"]).is_ok());
        for bad in [
            vec!["1h", "24h", "7d"],
            vec!["1h", "1d", "24h", "30d"],
            vec!["1h", "24h", "7d", "61d"],
            vec!["1m", "24h", "7d", "30d"],
            vec!["0h", "24h", "7d", "30d"],
            vec!["h", "24h", "7d", "30d"],
        ] {
            assert!(Windows::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
