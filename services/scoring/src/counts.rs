//! Reading the window counts of many senders from ClickHouse: one pass per
//! table, one row per sender, each window's counts derived from the
//! shortest window holding a row (windows nest), joined on the sender here.
//!
//! Counting once per token: `complaints` and `deliveries` are
//! ReplacingMergeTrees, and `FINAL` collapses the copies merges have not
//! reached yet. When one token arrives with different reports (a retry with
//! another code, a second provider), the copy loaded last decides code and
//! provider; such tokens are also listed in `multi_provider_tokens`. FINAL
//! costs little once background merges caught up, unlike a GROUP BY jti over
//! every row (measured in BENCHMARKS.md).

use std::collections::HashMap;

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

    /// Records that a row leaves a window at `left_ms` (its time plus the
    /// length of the shortest window holding it).
    fn expire_at(&mut self, left_ms: i64) {
        // A row at t is inside [now - len, now] until now passes t + len.
        let at = left_ms + 1;
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
    fn filter(self) -> String {
        match self {
            Scope::All => String::new(),
            Scope::Listed => format!("AND {}", listed_in("scoring_scope")),
        }
    }
}

/// SQL condition: the row's (esp, sender) is listed in `table`. The
/// sender-only test comes first: it prunes by the sorting key about twice as
/// fast as the tuple alone (measured on 50M rows).
fn listed_in(table: &str) -> String {
    format!(
        "sender IN (SELECT sender FROM {table}) AND (esp, sender) IN (SELECT esp, sender FROM {table})"
    )
}

/// Rows counted per window ending at `now_ms`, over `t` (ms), as `n<i>`.
fn window_counts(now_ms: i64) -> String {
    WINDOWS
        .iter()
        .enumerate()
        .map(|(i, (_, secs))| format!("countIf(t >= {}) AS n{i}", now_ms - secs * 1000))
        .collect::<Vec<_>>()
        .join(", ")
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

/// A sender's deliveries: per window, the messages and the bit of each
/// provider that delivered some.
#[derive(Row, Deserialize)]
struct DeliveryRow<'a> {
    esp: &'a str,
    sender: &'a str,
    d0: u64,
    d1: u64,
    d2: u64,
    d3: u64,
    p0: u64,
    p1: u64,
    p2: u64,
    p3: u64,
    /// When the oldest row leaves the shortest window holding it (ms).
    expires: i64,
    /// Rows whose provider was not in the run's list (arrived mid-run).
    unlisted: u64,
}

/// A sender's complaints: one cell per token, `((code * P) + provider) * 4 +
/// bucket`, with 1-based indices into the run's lists (0: not listed) and
/// the bucket the shortest window holding the token.
#[derive(Row, Deserialize)]
struct ComplaintRow<'a> {
    esp: &'a str,
    sender: &'a str,
    cells: Vec<u16>,
    expires: i64,
}

/// What a sender's delivery row says, kept until its complaints come.
struct Delivered {
    messages: [u64; 4],
    providers: [u64; 4],
    expires: i64,
}

/// The most providers a run can tell apart (one bit each).
const MAX_PROVIDERS: usize = 64;

/// SQL for the shortest window (0..=3) holding time `t` (ms) at `now_ms`,
/// and for that window's length in ms.
fn bucket_sql(now_ms: i64) -> (String, String) {
    let conds: Vec<String> = WINDOWS[..3]
        .iter()
        .enumerate()
        .map(|(i, (_, secs))| format!("t >= {}, {i}", now_ms - secs * 1000))
        .collect();
    let lens: Vec<String> = WINDOWS[..3]
        .iter()
        .enumerate()
        .map(|(i, (_, secs))| format!("b = {i}, {}", secs * 1000))
        .collect();
    (
        format!("multiIf({}, 3)", conds.join(", ")),
        format!("multiIf({}, {})", lens.join(", "), WINDOWS[3].1 * 1000),
    )
}

/// SQL for the 1-based index of `column`'s value in a list bound as two
/// arguments (the names, then [`positions`] of the same length), 0 if absent.
/// `transform` works on a LowCardinality column's dictionary, unlike
/// `indexOf(?, toString(column))`, which costs a string per row (measured:
/// the complaint read took twice as long).
fn position_in_list(column: &str) -> String {
    format!("transform({column}, ?, ?, 0)")
}

/// 1, 2, ... n: the values [`position_in_list`] maps a list of n names to.
fn positions(names: &[String]) -> Vec<u16> {
    (1..=names.len()).map(|i| i as u16).collect()
}

fn unlisted(what: &str) -> clickhouse::error::Error {
    clickhouse::error::Error::Custom(format!(
        "a {what} appeared while scoring read its list; the next run counts it"
    ))
}

/// Every sender's counts at `now_ms`, without heavy reporters (see
/// [`heavy_reporters`]), in no particular order. ClickHouse sends one row
/// per sender and table, small integers instead of names: sorting or
/// grouping by name on its side costs more than the whole join here.
pub struct Reader {
    complaints: RowCursor<ComplaintRow<'static>>,
    /// The first complaint row's sender, read while the deliveries came.
    first: Option<(SenderKey, SenderCounts)>,
    /// Whether the complaint rows are all read.
    done: bool,
    join: Join,
    /// After the complaints: the senders with deliveries only.
    rest: Vec<(SenderKey, Delivered)>,
}

impl Reader {
    /// Reads the deliveries of the senders in `scope` and starts on their
    /// complaints.
    pub async fn open(
        client: &Client,
        scope: Scope,
        now_ms: i64,
    ) -> clickhouse::error::Result<Reader> {
        let from_ms = now_ms - WINDOWS[3].1 * 1000;
        let filter = scope.filter();
        // The names in the rows this run reads. Unfiltered, a DISTINCT over a
        // LowCardinality column reads little more than its dictionaries.
        let distinct = |column: &str| {
            format!(
                "SELECT DISTINCT toString({column}) FROM (
                     SELECT {column} FROM complaints WHERE 1 {filter}
                     UNION ALL SELECT {column} FROM deliveries WHERE 1 {filter}
                 ) ORDER BY 1"
            )
        };
        let providers: Vec<String> = client.query(&distinct("provider")).fetch_all().await?;
        if providers.len() > MAX_PROVIDERS {
            return Err(clickhouse::error::Error::Custom(format!(
                "{} providers; scoring tells at most {MAX_PROVIDERS} apart",
                providers.len()
            )));
        }
        let codes: Vec<String> = client
            .query(&format!(
                "SELECT DISTINCT toString(code) FROM complaints WHERE 1 {filter} ORDER BY 1"
            ))
            .fetch_all()
            .await?;
        let np = providers.len() + 1;
        if (codes.len() + 1) * np * 4 > usize::from(u16::MAX) {
            return Err(clickhouse::error::Error::Custom(format!(
                "{} codes and {} providers are too many to count in one cell",
                codes.len(),
                providers.len()
            )));
        }
        let (bucket, length) = bucket_sql(now_ms);
        let windows: Vec<String> = (0..4)
            .map(|i| format!("sumIf(delivered, b <= {i}) AS d{i}"))
            .chain((0..4).map(|i| {
                format!(
                    "groupBitOrIf(bitShiftLeft(toUInt64(1), toUInt8(p - 1)), \
                                  b <= {i} AND delivered > 0 AND p > 0) AS p{i}"
                )
            }))
            .collect();
        // Delivered: a newer report for an hour replaces the older (FINAL).
        let deliveries = client
            .query(&format!(
                "SELECT esp, sender, {}, min(t + {length}) AS expires, countIf(p = 0) AS unlisted FROM (
                     SELECT esp, sender, delivered, toInt64(toUnixTimestamp(hour)) * 1000 AS t,
                            {bucket} AS b, {} AS p
                     FROM deliveries FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY esp, sender {FINAL_SETTINGS}",
                windows.join(", "),
                position_in_list("provider"),
            ))
            .bind(&providers)
            .bind(positions(&providers))
            .fetch::<DeliveryRow<'static>>()?;
        // Complaints: one per token (FINAL), started before the deliveries
        // are read so ClickHouse works on both at once.
        let mut complaints = client
            .query(&format!(
                "SELECT esp, sender, groupArray(toUInt16(((c * {np}) + p) * 4 + b)) AS cells,
                        min(t + {length}) AS expires FROM (
                     SELECT esp, sender, toUnixTimestamp64Milli(reported_at) AS t, {bucket} AS b,
                            {} AS c, {} AS p
                     FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY esp, sender {FINAL_SETTINGS}",
                position_in_list("code"),
                position_in_list("provider"),
            ))
            .bind(&codes)
            .bind(positions(&codes))
            .bind(&providers)
            .bind(positions(&providers))
            .fetch::<ComplaintRow<'static>>()?;
        // ClickHouse starts on the complaints while the deliveries are read.
        let (delivered, first) = tokio::join!(read_deliveries(deliveries), complaints.next());
        let mut join = Join {
            delivered: delivered?,
            codes: codes.into_iter().map(Name::from).collect(),
            providers: providers.into_iter().map(Name::from).collect(),
        };
        let first = match first? {
            Some(row) => Some(join.complaints(&row)?),
            None => None,
        };
        let done = first.is_none();
        Ok(Reader {
            complaints,
            first,
            done,
            join,
            rest: vec![],
        })
    }

    /// The next sender with rows in some window, or `None` at the end.
    pub async fn next(&mut self) -> clickhouse::error::Result<Option<(SenderKey, SenderCounts)>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        if !self.done {
            match self.complaints.next().await? {
                Some(row) => return self.join.complaints(&row).map(Some),
                None => {
                    self.done = true;
                    // Senders with deliveries and no complaint in any window.
                    for (esp, by_sender) in std::mem::take(&mut self.join.delivered) {
                        for (sender, d) in by_sender {
                            self.rest.push(((esp.clone(), sender), d));
                        }
                    }
                }
            }
        }
        Ok(self.rest.pop().map(|(key, d)| (key, sender_counts(d))))
    }
}

/// Deliveries by esp, then sender.
type DeliveredBySender = HashMap<String, HashMap<String, Delivered>>;

async fn read_deliveries(
    mut cursor: RowCursor<DeliveryRow<'static>>,
) -> clickhouse::error::Result<DeliveredBySender> {
    let mut delivered = DeliveredBySender::new();
    while let Some(row) = cursor.next().await? {
        if row.unlisted > 0 {
            return Err(unlisted("provider"));
        }
        let by_sender = match delivered.get_mut(row.esp) {
            Some(m) => m,
            None => delivered.entry(row.esp.to_string()).or_default(),
        };
        by_sender.insert(
            row.sender.to_string(),
            Delivered {
                messages: [row.d0, row.d1, row.d2, row.d3],
                providers: [row.p0, row.p1, row.p2, row.p3],
                expires: row.expires,
            },
        );
    }
    Ok(delivered)
}

/// Joins complaint rows to the deliveries read before them.
struct Join {
    /// Deliveries of the senders whose complaints have not come yet.
    delivered: DeliveredBySender,
    codes: Vec<Name>,
    providers: Vec<Name>,
}

impl Join {
    /// A sender's counts from its complaint row and its deliveries, if any.
    fn complaints(
        &mut self,
        row: &ComplaintRow<'_>,
    ) -> clickhouse::error::Result<(SenderKey, SenderCounts)> {
        let (sender, mut counts) = match self
            .delivered
            .get_mut(row.esp)
            .and_then(|m| m.remove_entry(row.sender))
        {
            Some((sender, d)) => (sender, sender_counts(d)),
            None => (row.sender.to_string(), SenderCounts::default()),
        };
        let key = (row.esp.to_string(), sender);
        let np = self.providers.len() + 1;
        // Tokens per (code, provider) cell and bucket, then per window:
        // a window holds its own bucket and every shorter one's.
        let mut tally: Vec<(u16, [u64; 4])> = vec![];
        for cell in &row.cells {
            let (pair, bucket) = (cell / 4, usize::from(cell % 4));
            match tally.iter_mut().find(|(p, _)| *p == pair) {
                Some((_, n)) => n[bucket] += 1,
                None => {
                    let mut n = [0; 4];
                    n[bucket] = 1;
                    tally.push((pair, n));
                }
            }
        }
        for (pair, buckets) in tally {
            let (c, p) = (usize::from(pair) / np, usize::from(pair) % np);
            let (Some(code), Some(provider)) = (
                c.checked_sub(1).and_then(|c| self.codes.get(c)),
                p.checked_sub(1).and_then(|p| self.providers.get(p)),
            ) else {
                return Err(unlisted("complaint code or provider"));
            };
            let mut n = 0;
            for (i, k) in buckets.into_iter().enumerate() {
                n += k;
                if n > 0 {
                    counts.window(i).complaints.push(ComplaintCount {
                        code: code.clone(),
                        provider: provider.clone(),
                        complaints: n,
                    });
                }
            }
        }
        counts.expire_at(row.expires);
        Ok((key, counts))
    }
}

/// A sender's counts from its deliveries alone.
fn sender_counts(d: Delivered) -> SenderCounts {
    let mut counts = SenderCounts::default();
    for i in 0..WINDOWS.len() {
        if d.messages[i] > 0 {
            let w = counts.window(i);
            w.delivered = d.messages[i];
            w.delivering_providers = d.providers[i].count_ones();
        }
    }
    if counts.windows.iter().any(Option::is_some) {
        counts.expire_at(d.expires);
    }
    counts
}

/// The senders listed in `scoring_suspects` with a reporter that may pass
/// the cap: one with more complaints than the cap in the longest window (a
/// superset of those over it in any shorter one). This pass reads without
/// FINAL (which merges a whole partition once it has a new part) and groups
/// by a hash of (esp, sender, reporter), a number instead of three strings:
/// copies of a token and hash collisions can only add candidates, which the
/// exact count drops. Both took 0.7 s or more off (50M complaints).
pub async fn reporter_cap_candidates(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<Vec<SenderKey>> {
    let from_ms = now_ms - WINDOWS[3].1 * 1000;
    let suspects = listed_in("scoring_suspects");
    client
        .query(&format!(
            "SELECT DISTINCT esp, sender FROM complaints
             WHERE {suspects} AND reporter != '' AND cityHash64(esp, sender, reporter) IN (
                 SELECT cityHash64(esp, sender, reporter) AS h FROM complaints
                 WHERE toUnixTimestamp64Milli(reported_at) BETWEEN {from_ms} AND {now_ms}
                   AND reporter != '' AND {suspects}
                 GROUP BY h HAVING count() > {})",
            policy.max_per_reporter
        ))
        .fetch_all()
        .await
}

/// The reporters over the cap in some window, for the senders listed in
/// `scoring_suspects` (after [`reporter_cap_candidates`], only those few):
/// per sender, (window index, reporter with its per-code counts in that
/// window). Counted once per token (FINAL).
pub async fn heavy_reporters(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> clickhouse::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    let from_ms = now_ms - WINDOWS[3].1 * 1000;
    let listed = listed_in("scoring_suspects");
    // Only the (sender, provider, reporter) groups over the cap in the
    // longest window come back; the loop below checks each window.
    let rows = client
        .query(&format!(
            "SELECT esp, sender, provider, reporter, code, n0, n1, n2, n3 FROM (
                 SELECT *, sum(n3) OVER (PARTITION BY esp, sender, provider, reporter) AS total FROM (
                     SELECT esp, sender, toString(provider) AS provider, reporter, toString(code) AS code, {} FROM (
                         SELECT esp, sender, provider, reporter, code, toUnixTimestamp64Milli(reported_at) AS t
                         FROM complaints FINAL
                         WHERE {listed} AND t >= {from_ms} AND t <= {now_ms} AND reporter != '')
                     GROUP BY esp, sender, provider, reporter, code))
             WHERE total > {} {FINAL_SETTINGS}",
            window_counts(now_ms),
            policy.max_per_reporter,
        ))
        .fetch_all::<ReporterAgg>()
        .await?;
    // Per window, a reporter is heavy if all its codes together pass the cap.
    // (sender, provider, reporter) -> per code, the count in each window.
    let mut per_reporter: HashMap<(SenderKey, String, String), Vec<CodeCounts>> = HashMap::new();
    for r in rows {
        per_reporter
            .entry(((r.esp, r.sender), r.provider, r.reporter))
            .or_default()
            .push((Name::from(r.code), [r.n0, r.n1, r.n2, r.n3]));
    }
    let mut out: HashMap<SenderKey, Vec<(usize, HeavyReporter)>> = HashMap::new();
    for ((key, provider, reporter), codes) in per_reporter {
        let provider = Name::from(provider);
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
