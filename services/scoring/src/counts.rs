//! Reading the window counts of many senders from ClickHouse, streamed in
//! (esp, sender) order so a full rescore never holds every sender's counts
//! at once: one pass per table, every window a conditional aggregate over the
//! longest one, and the two result streams joined on the sender.
//!
//! Counting once per token: `complaints` and `deliveries` are
//! ReplacingMergeTrees, and `FINAL` collapses the copies merges have not
//! reached yet. When one token arrives with different reports (a retry with
//! another code, a second provider), the copy loaded last decides code and
//! provider; such tokens are also listed in `multi_provider_tokens`. FINAL
//! costs little once background merges caught up, unlike a GROUP BY jti over
//! every row (measured in BENCHMARKS.md).

use std::collections::{HashMap, HashSet};

use clickhouse::query::RowCursor;
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::policy::{ComplaintCount, HeavyReporter, Name, Policy, WindowCounts};

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

/// One row of either count query: a sender's counts for one provider (and,
/// for complaints, one code) in every window.
#[derive(Row, Deserialize)]
struct Agg<'a> {
    esp: &'a str,
    sender: &'a str,
    provider: &'a str,
    code: &'a str,
    n0: u64,
    f0: i64,
    n1: u64,
    f1: i64,
    n2: u64,
    f2: i64,
    n3: u64,
    f3: i64,
}

/// An [`Agg`] without its sender, names shared.
struct Part {
    provider: Name,
    code: Name,
    /// (count, first row time) per window.
    windows: [(u64, i64); 4],
}

/// A code and its count in each window.
type CodeCounts = (Name, [u64; 4]);

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

/// Provider and code names seen in one read, each allocated once.
#[derive(Default)]
struct Names(HashSet<Name>);

impl Names {
    fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n: Name = s.into();
        self.0.insert(n.clone());
        n
    }
}

/// The rows of one count query, grouped by sender. Rows must arrive sorted
/// by (esp, sender); a row out of order fails the read rather than joining
/// counts to the wrong sender.
struct Groups {
    cursor: RowCursor<Agg<'static>>,
    /// The first row of the next group, already read.
    pending: Option<(SenderKey, Part)>,
    done: bool,
}

impl Groups {
    fn new(cursor: RowCursor<Agg<'static>>) -> Self {
        Groups {
            cursor,
            pending: None,
            done: false,
        }
    }

    /// The next sender's rows, or `None` at the end.
    async fn next(
        &mut self,
        names: &mut Names,
    ) -> clickhouse::error::Result<Option<(SenderKey, Vec<Part>)>> {
        let mut group: Option<(SenderKey, Vec<Part>)> =
            self.pending.take().map(|(key, part)| (key, vec![part]));
        while !self.done {
            let Some(row) = self.cursor.next().await? else {
                self.done = true;
                break;
            };
            let part = Part {
                provider: names.get(row.provider),
                code: names.get(row.code),
                windows: [
                    (row.n0, row.f0),
                    (row.n1, row.f1),
                    (row.n2, row.f2),
                    (row.n3, row.f3),
                ],
            };
            match &mut group {
                Some((key, parts)) if key.0 == row.esp && key.1 == row.sender => {
                    parts.push(part);
                }
                Some((key, _)) => {
                    if (row.esp, row.sender) < (key.0.as_str(), key.1.as_str()) {
                        return Err(out_of_order(key, row.esp, row.sender));
                    }
                    self.pending = Some(((row.esp.into(), row.sender.into()), part));
                    break;
                }
                None => group = Some(((row.esp.into(), row.sender.into()), vec![part])),
            }
        }
        Ok(group)
    }
}

fn out_of_order(previous: &SenderKey, esp: &str, sender: &str) -> clickhouse::error::Error {
    clickhouse::error::Error::Custom(format!(
        "count rows out of (esp, sender) order: {esp}/{sender} after {}/{}",
        previous.0, previous.1
    ))
}

/// Every sender's counts at `now_ms`, in (esp, sender) order, without heavy
/// reporters (see [`heavy_reporters`]).
pub struct Reader {
    deliveries: Groups,
    complaints: Groups,
    /// The next sender of each stream, read ahead for the join.
    heads: [Option<(SenderKey, Vec<Part>)>; 2],
    names: Names,
}

impl Reader {
    /// Starts reading the senders in `scope`.
    pub fn open(client: &Client, scope: Scope, now_ms: i64) -> clickhouse::error::Result<Reader> {
        let from_ms = now_ms - WINDOWS[3].1 * 1000;
        let filter = scope.filter();
        // Delivered: per provider; a newer report for an hour replaces the older.
        let deliveries = client
            .query(&format!(
                "SELECT esp, sender, toString(provider) AS provider, '' AS code, {} FROM (
                     SELECT esp, sender, provider, delivered, toInt64(toUnixTimestamp(hour)) * 1000 AS t
                     FROM deliveries FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY esp, sender, provider ORDER BY esp, sender {FINAL_SETTINGS}",
                window_columns(Some("delivered"), true, now_ms)
            ))
            .fetch::<Agg<'static>>()?;
        // Complaints: one per token, by (code, provider).
        let complaints = client
            .query(&format!(
                "SELECT esp, sender, toString(provider) AS provider, toString(code) AS code, {} FROM (
                     SELECT esp, sender, code, provider, toUnixTimestamp64Milli(reported_at) AS t
                     FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY esp, sender, code, provider ORDER BY esp, sender {FINAL_SETTINGS}",
                window_columns(None, true, now_ms)
            ))
            .fetch::<Agg<'static>>()?;
        Ok(Reader {
            deliveries: Groups::new(deliveries),
            complaints: Groups::new(complaints),
            heads: [None, None],
            names: Names::default(),
        })
    }

    /// The next sender with rows in some window, or `None` at the end.
    pub async fn next(&mut self) -> clickhouse::error::Result<Option<(SenderKey, SenderCounts)>> {
        for (head, stream) in self
            .heads
            .iter_mut()
            .zip([&mut self.deliveries, &mut self.complaints])
        {
            if head.is_none() {
                *head = stream.next(&mut self.names).await?;
            }
        }
        let key = match &self.heads {
            [None, None] => return Ok(None),
            [Some((d, _)), Some((c, _))] => d.min(c).clone(),
            [Some((k, _)), None] | [None, Some((k, _))] => k.clone(),
        };
        let mut counts = SenderCounts::default();
        // heads[0] holds deliveries, heads[1] complaints.
        for (stream, head) in self.heads.iter_mut().enumerate() {
            let Some((_, parts)) = head.take_if(|(k, _)| *k == key) else {
                continue;
            };
            for part in parts {
                for (i, (n, first)) in part.windows.into_iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let w = counts.window(i);
                    if stream == 0 {
                        w.delivered += n;
                        w.delivered_by_provider.push((part.provider.clone(), n));
                    } else {
                        w.complaints.push(ComplaintCount {
                            code: part.code.clone(),
                            provider: part.provider.clone(),
                            complaints: n,
                        });
                    }
                    counts.expires(first, i);
                }
            }
        }
        Ok(Some((key, counts)))
    }
}

/// The reporters over the cap in some window, for the senders listed in
/// `scoring_suspects`: per sender, (window index, reporter with its per-code
/// counts in that window).
pub async fn heavy_reporters(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    let from_ms = now_ms - WINDOWS[3].1 * 1000;
    // The sender-only test first: it prunes by the sorting key.
    let suspects = "sender IN (SELECT sender FROM scoring_suspects) \
                    AND (esp, sender) IN (SELECT esp, sender FROM scoring_suspects)";
    // Reporters over the cap in the longest window (a superset of those over
    // it in any shorter one), then their counts per code and window.
    let over_cap = format!(
        "SELECT esp, sender, reporter FROM complaints FINAL
         WHERE toUnixTimestamp64Milli(reported_at) BETWEEN {from_ms} AND {now_ms} AND reporter != '' AND {suspects}
         GROUP BY esp, sender, reporter HAVING count() > {} {FINAL_SETTINGS}",
        policy.max_per_reporter
    );
    let rows = client
        .query(&format!(
            "SELECT esp, sender, toString(provider) AS provider, reporter, toString(code) AS code, {} FROM (
                 SELECT esp, sender, provider, reporter, code, toUnixTimestamp64Milli(reported_at) AS t
                 FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} AND reporter != '' AND {suspects}
                   AND (esp, sender, reporter) IN ({over_cap}))
             GROUP BY esp, sender, provider, reporter, code {FINAL_SETTINGS}",
            window_columns(None, false, now_ms),
        ))
        .fetch_all::<ReporterAgg>()
        .await?;
    // Per window, a reporter is heavy if all its codes together pass the cap.
    let mut names = Names::default();
    // (sender, provider, reporter) -> per code, the count in each window.
    let mut per_reporter: HashMap<(SenderKey, String, String), Vec<CodeCounts>> = HashMap::new();
    for r in rows {
        per_reporter
            .entry(((r.esp, r.sender), r.provider, r.reporter))
            .or_default()
            .push((names.get(&r.code), [r.n0, r.n1, r.n2, r.n3]));
    }
    let mut out: HashMap<SenderKey, Vec<(usize, HeavyReporter)>> = HashMap::new();
    for ((key, provider, reporter), codes) in per_reporter {
        let provider = names.get(&provider);
        for i in 0..WINDOWS.len() {
            let total: u64 = codes.iter().map(|(_, n)| n[i]).sum();
            if total > policy.max_per_reporter {
                let by_code = codes
                    .iter()
                    .filter(|(_, n)| n[i] > 0)
                    .map(|(code, n)| (code.clone(), n[i]))
                    .collect();
                out.entry(key.clone()).or_default().push((
                    i,
                    HeavyReporter {
                        provider: provider.clone(),
                        reporter: reporter.clone(),
                        by_code,
                    },
                ));
            }
        }
    }
    Ok(out)
}
