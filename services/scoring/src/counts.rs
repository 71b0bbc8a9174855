//! Reading the window counts of many senders from ClickHouse in one pass per
//! table: every window is a conditional aggregate over the longest one.
//!
//! Counting once per token: `complaints` and `deliveries` are
//! ReplacingMergeTrees, and `FINAL` collapses the copies merges have not
//! reached yet. When one token arrives with different reports (a retry with
//! another code, a second provider), the copy loaded last decides code and
//! provider; such tokens are also listed in `multi_provider_tokens`. FINAL
//! costs little once background merges caught up, unlike a GROUP BY jti over
//! every row (measured in BENCHMARKS.md).

use std::collections::HashMap;

use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::policy::{Policy, WindowCounts};

/// The windows every sender is scored over: name and length in seconds. A
/// sender's evidence is the most severe tier any window with enough volume
/// supports: short windows catch bursts, long ones slow, steady abuse.
pub const WINDOWS: [(&str, i64); 4] = [
    ("1h", 3_600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

/// (esp, sender).
pub type SenderKey = (String, String);

/// One sender's counts per window (indexed like [`WINDOWS`]), and when the
/// oldest counted row leaves a window, after which the sender must be rescored.
#[derive(Debug, Default)]
pub struct SenderCounts {
    /// Counts per window, `None` where the window holds nothing.
    pub windows: [Option<WindowCounts>; 4],
    /// Earliest time (ms) at which a counted row leaves its window.
    pub next_expiry_ms: Option<i64>,
}

impl SenderCounts {
    fn window(&mut self, i: usize) -> &mut WindowCounts {
        self.windows[i].get_or_insert_with(WindowCounts::default)
    }

    fn expires(&mut self, first_ms: i64, i: usize) {
        // A row at t is inside [now - len, now] until now passes t + len.
        let at = first_ms + WINDOWS[i].1 * 1000 + 1;
        self.next_expiry_ms = Some(self.next_expiry_ms.map_or(at, |e| e.min(at)));
    }
}

/// Which senders a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every sender with data.
    All,
    /// The senders listed in `scoring_scope`.
    Listed,
}

impl Scope {
    fn filter(self) -> &'static str {
        match self {
            Scope::All => "",
            // The sender-only test first: it prunes by the sorting key about
            // twice as fast as the tuple alone (measured on 50M rows).
            Scope::Listed => {
                "AND sender IN (SELECT sender FROM scoring_scope) \
                 AND (esp, sender) IN (SELECT esp, sender FROM scoring_scope)"
            }
        }
    }
}

/// Per-window aggregates over `t` (ms) for each window ending at `now_ms`:
/// `value` summed (or rows counted) as `n<i>`, and with `first` the smallest
/// `t` as `f<i>`.
fn window_columns(value: Option<&str>, first: bool, now_ms: i64) -> String {
    WINDOWS
        .iter()
        .enumerate()
        .map(|(i, (_, secs))| {
            let cond = format!("t >= {}", now_ms - secs * 1000);
            let n = match value {
                Some(v) => format!("sumIf({v}, {cond})"),
                None => format!("countIf({cond})"),
            };
            if first {
                format!("{n} AS n{i}, minIf(t, {cond}) AS f{i}")
            } else {
                format!("{n} AS n{i}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Row, Deserialize)]
struct Agg {
    esp: String,
    sender: String,
    a: String,
    b: String,
    n0: u64,
    f0: i64,
    n1: u64,
    f1: i64,
    n2: u64,
    f2: i64,
    n3: u64,
    f3: i64,
}

impl Agg {
    /// (count, first row time) per window, for windows holding something.
    fn per_window(&self) -> impl Iterator<Item = (usize, u64, i64)> {
        [
            (0, self.n0, self.f0),
            (1, self.n1, self.f1),
            (2, self.n2, self.f2),
            (3, self.n3, self.f3),
        ]
        .into_iter()
        .filter(|(_, n, _)| *n > 0)
    }
}

/// A code and its count in each window.
type CodeCounts = (String, [u64; 4]);

/// A heavy reporter's complaints per code, per window.
#[derive(Row, Deserialize)]
struct ReporterAgg {
    esp: String,
    sender: String,
    provider: String,
    reporter: String,
    code: String,
    n0: u64,
    n1: u64,
    n2: u64,
    n3: u64,
}

const FINAL_SETTINGS: &str = "SETTINGS do_not_merge_across_partitions_select_final = 1";

/// Reads every window's counts for the senders in `scope` at `now_ms`.
pub async fn read(
    client: &Client,
    policy: &Policy,
    scope: Scope,
    now_ms: i64,
) -> clickhouse::error::Result<HashMap<SenderKey, SenderCounts>> {
    let from_ms = now_ms - WINDOWS[3].1 * 1000;
    let filter = scope.filter();
    let mut out: HashMap<SenderKey, SenderCounts> = HashMap::new();

    // Delivered: per provider; a newer report for an hour replaces the older.
    let delivered = client
        .query(&format!(
            "SELECT esp, sender, toString(provider) AS a, '' AS b, {} FROM (
                 SELECT esp, sender, provider, delivered, toInt64(toUnixTimestamp(hour)) * 1000 AS t
                 FROM deliveries FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
             GROUP BY esp, sender, provider {FINAL_SETTINGS}",
            window_columns(Some("delivered"), true, now_ms)
        ))
        .fetch_all::<Agg>()
        .await?;
    for d in delivered {
        let windows: Vec<_> = d.per_window().collect();
        let c = out.entry((d.esp, d.sender)).or_default();
        for (i, n, first) in windows {
            let w = c.window(i);
            w.delivered += n;
            *w.delivered_by_provider.entry(d.a.clone()).or_default() += n;
            c.expires(first, i);
        }
    }

    // Complaints: one per token, by (code, provider).
    let complaints = client
        .query(&format!(
            "SELECT esp, sender, toString(code) AS a, toString(provider) AS b, {} FROM (
                 SELECT esp, sender, code, provider, toUnixTimestamp64Milli(reported_at) AS t
                 FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
             GROUP BY esp, sender, code, provider {FINAL_SETTINGS}",
            window_columns(None, true, now_ms)
        ))
        .fetch_all::<Agg>()
        .await?;
    for r in complaints {
        let windows: Vec<_> = r.per_window().collect();
        let c = out.entry((r.esp, r.sender)).or_default();
        for (i, n, first) in windows {
            *c.window(i)
                .complaints
                .entry((r.a.clone(), r.b.clone()))
                .or_default() += n;
            c.expires(first, i);
        }
    }

    // Reporters over the cap in the longest window (a superset of those over
    // it in any shorter one). Found by a 64-bit hash of (esp, sender,
    // reporter) first: a fixed-width key with a bare count aggregates many
    // times faster than three strings with per-window columns over every
    // reporter, and only the few heavy ones are then read in full. A
    // collision among 50M keys has odds near 1e-4 and only adds a candidate.
    let heavy = format!(
        "SELECT k FROM (
             SELECT cityHash64(esp, sender, reporter) AS k, toUnixTimestamp64Milli(reported_at) AS t
             FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} AND reporter != '' {filter})
         GROUP BY k HAVING count() > {}",
        policy.max_per_reporter
    );
    let reporters = client
        .query(&format!(
            "SELECT esp, sender, toString(provider) AS provider, reporter, toString(code) AS code, {} FROM (
                 SELECT esp, sender, provider, reporter, code, toUnixTimestamp64Milli(reported_at) AS t
                 FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} AND reporter != '' {filter}
                   AND cityHash64(esp, sender, reporter) IN ({heavy}))
             GROUP BY esp, sender, provider, reporter, code {FINAL_SETTINGS}",
            window_columns(None, false, now_ms),
        ))
        .fetch_all::<ReporterAgg>()
        .await?;
    // Per window, a reporter is heavy if all its codes together pass the cap.
    let mut per_reporter: HashMap<(SenderKey, String, String), Vec<CodeCounts>> = HashMap::new();
    for r in reporters {
        per_reporter
            .entry(((r.esp, r.sender), r.provider, r.reporter))
            .or_default()
            .push((r.code, [r.n0, r.n1, r.n2, r.n3]));
    }
    for ((key, provider, reporter), codes) in per_reporter {
        let c = out.entry(key).or_default();
        for i in 0..WINDOWS.len() {
            let total: u64 = codes.iter().map(|(_, n)| n[i]).sum();
            if total > policy.max_per_reporter {
                let by_code = codes
                    .iter()
                    .filter(|(_, n)| n[i] > 0)
                    .map(|(code, n)| (code.clone(), n[i]))
                    .collect();
                c.window(i)
                    .heavy_reporters
                    .insert((provider.clone(), reporter.clone()), by_code);
            }
        }
    }
    Ok(out)
}
