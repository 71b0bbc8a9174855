//! Reading the window counts of many senders from ClickHouse: one pass per
//! table, one row per sender and [`Slice`] (campaign and From domain), each
//! window's counts derived from the shortest window holding a row (windows
//! nest), joined on the sender here. The slices are what the campaign and
//! domain levels add up (see [`crate::books`]): one read serves every level.
//!
//! Counting once per token: `complaints` and `deliveries` are
//! ReplacingMergeTrees, and `FINAL` collapses the copies merges have not
//! reached yet. When one token arrives with different reports (a retry with
//! another code, a second provider), the copy loaded last decides code and
//! provider; such tokens are also listed in `multi_provider_tokens`. FINAL
//! costs little once background merges caught up, unlike a GROUP BY jti over
//! every row (measured in BENCHMARKS.md).

use clickhouse::query::RowCursor;
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::parse_code;
use super::tally::{Interner, Tally};
use crate::counts::{SenderCounts, SenderKey, Slice, SliceCounts};
use crate::partition::Partition;
use crate::policy::{ComplaintCode, Name};
use crate::windows::{Windows, COUNT};

/// The order both reads return rows in.
pub(super) type RowKey = (SenderKey, Slice);

/// Which senders a read covers, of the partition's ESPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every sender with data.
    All(Partition),
    /// The senders listed in the partition's `scoring_scope`.
    Listed(Partition),
}

impl Scope {
    fn filter(self) -> String {
        match self {
            Scope::All(part) if part.is_split() => format!("AND {}", part.esps()),
            Scope::All(_) => String::new(),
            Scope::Listed(part) => format!("AND {}", listed_in(&part.list("scoring_scope"))),
        }
    }

    /// Whether the read covers every sender of the partition.
    pub fn is_all(self) -> bool {
        matches!(self, Scope::All(_))
    }

    /// The partition read.
    pub fn partition(self) -> Partition {
        match self {
            Scope::All(part) | Scope::Listed(part) => part,
        }
    }
}

/// SQL condition: the row's (esp, sender) is listed in `table`. The
/// sender-only test comes first: it prunes by the sorting key about twice as
/// fast as the tuple alone (measured on 50M rows). `GLOBAL`: on a cluster
/// the work lists are kept on the node scoring talks to, and each shard
/// must test against that list, not its own (empty) copy.
pub(crate) fn listed_in(table: &str) -> String {
    format!(
        "sender GLOBAL IN (SELECT sender FROM {table}) AND (esp, sender) GLOBAL IN (SELECT esp, sender FROM {table})"
    )
}

/// Rows counted per window ending at `now_ms`, over `t` (ms), as `n<i>`.
pub(crate) fn window_counts(windows: &Windows, now_ms: i64) -> String {
    (0..COUNT)
        .map(|i| format!("countIf(t >= {}) AS n{i}", now_ms - windows.ms(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const FINAL_SETTINGS: &str = "SETTINGS do_not_merge_across_partitions_select_final = 1";

/// A sender's deliveries: per window, the messages and the bit of each
/// provider that delivered some.
#[derive(Row, Deserialize)]
struct DeliveryRow<'a> {
    esp: &'a str,
    sender: &'a str,
    campaign: &'a str,
    from_domain: &'a str,
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
pub(super) struct ComplaintRow<'a> {
    pub(super) esp: &'a str,
    pub(super) sender: &'a str,
    pub(super) campaign: &'a str,
    pub(super) from_domain: &'a str,
    pub(super) cells: Vec<u16>,
    pub(super) expires: i64,
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
pub(crate) fn bucket_sql(windows: &Windows, now_ms: i64) -> (String, String) {
    let conds: Vec<String> = (0..COUNT - 1)
        .map(|i| format!("t >= {}, {i}", now_ms - windows.ms(i)))
        .collect();
    let lens: Vec<String> = (0..COUNT - 1)
        .map(|i| format!("b = {i}, {}", windows.ms(i)))
        .collect();
    (
        format!("multiIf({}, {})", conds.join(", "), COUNT - 1),
        format!("multiIf({}, {})", lens.join(", "), windows.longest_ms()),
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

pub(super) fn unlisted(what: &str) -> crate::ScoringError {
    crate::ScoringError::Moved(format!(
        "a {what} appeared while scoring read its list; the next run counts it"
    ))
}

/// Every sender's counts at `now_ms` per slice, without heavy reporters
/// (see [`super::reporters::heavy_reporters`]), in (esp, sender) order. ClickHouse sends one
/// row per sender, slice and table, small integers instead of code and
/// provider names, both sorted by (esp, sender, campaign, from_domain), so
/// the two streams are joined as they come, without a map of a million
/// senders here (which cost the scorer more than the sort costs ClickHouse,
/// measured).
pub struct Reader {
    complaints: Stream<ComplaintRow<'static>>,
    deliveries: Stream<DeliveryRow<'static>>,
    /// The next slice of each stream, read but not yet returned.
    next_complaint: Option<(RowKey, SenderCounts)>,
    next_delivery: Option<(RowKey, Delivered)>,
    /// The first slice of the next sender, read but not yet returned.
    pending: Option<(RowKey, SenderCounts)>,
    tally: Tally,
    /// Campaign and domain names of the delivery rows.
    delivery_names: Interner,
}

/// A cursor over rows that must come in increasing [`RowKey`] order.
struct Stream<T: clickhouse::RowRead> {
    cursor: RowCursor<T>,
    /// Whether every row is read.
    done: bool,
    /// The last row's key, to catch rows out of order.
    last: Option<RowKey>,
}

impl<T: clickhouse::RowRead> Stream<T> {
    fn new(cursor: RowCursor<T>) -> Self {
        Stream {
            cursor,
            done: false,
            last: None,
        }
    }

    /// Reads the next row and turns it into `U` (with its key) while the
    /// row's borrowed names are valid.
    async fn next<U>(
        &mut self,
        what: &str,
        f: impl FnOnce(T::Value<'_>) -> crate::error::Result<(RowKey, U)>,
    ) -> crate::error::Result<Option<(RowKey, U)>> {
        if self.done {
            return Ok(None);
        }
        let Some(row) = self.cursor.next().await? else {
            self.done = true;
            return Ok(None);
        };
        let (key, value) = f(row)?;
        // A join of unordered streams would split senders without an error.
        if self.last.as_ref().is_some_and(|last| *last >= key) {
            return Err(crate::ScoringError::Moved(format!(
                "{what} rows out of (esp, sender, campaign, from_domain) order at {key:?}"
            )));
        }
        self.last = Some(key.clone());
        Ok(Some((key, value)))
    }
}

/// The providers and complaint codes in the rows a run reads (in this
/// order, they number the cells of the complaint read).
async fn run_names(
    client: &Client,
    filter: &str,
) -> crate::error::Result<(Vec<String>, Vec<String>)> {
    // Unfiltered, a DISTINCT over a LowCardinality column reads little more
    // than its dictionaries.
    let providers: Vec<String> = client
        .query(&format!(
            "SELECT DISTINCT toString(provider) FROM (
                 SELECT provider FROM complaints WHERE 1 {filter}
                 UNION ALL SELECT provider FROM deliveries WHERE 1 {filter}
             ) ORDER BY 1"
        ))
        .fetch_all()
        .await?;
    if providers.len() > MAX_PROVIDERS {
        return Err(crate::ScoringError::TooMany(format!(
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
    if (codes.len() + 1) * (providers.len() + 1) * 4 > usize::from(u16::MAX) {
        return Err(crate::ScoringError::TooMany(format!(
            "{} codes and {} providers are too many to count in one cell",
            codes.len(),
            providers.len()
        )));
    }
    Ok((providers, codes))
}

/// The two large reads of a run, over the same time range and senders.
struct ReadSql {
    from_ms: i64,
    now_ms: i64,
    /// The scope's condition on (esp, sender).
    filter: String,
    /// SQL of a row's bucket (its shortest window) and that window's length.
    bucket: String,
    length: String,
}

impl ReadSql {
    /// The rows of the read: in the longest window, of the senders in scope.
    fn range(&self) -> String {
        let ReadSql {
            from_ms,
            now_ms,
            filter,
            ..
        } = self;
        format!("t >= {from_ms} AND t <= {now_ms} {filter}")
    }

    /// Delivered per slice and window; a newer report for an hour replaces
    /// the older (FINAL).
    fn deliveries(&self) -> String {
        let (range, bucket, length) = (self.range(), &self.bucket, &self.length);
        let windows: Vec<String> = (0..4)
            .map(|i| format!("toUInt64(sumIf(delivered, b <= {i})) AS d{i}"))
            .chain((0..4).map(|i| {
                format!(
                    "groupBitOrIf(bitShiftLeft(toUInt64(1), toUInt8(p - 1)), \
                                  b <= {i} AND delivered > 0 AND p > 0) AS p{i}"
                )
            }))
            .collect();
        format!(
            "SELECT esp, sender, campaign, from_domain, {}, toInt64(min(t + {length})) AS expires,
                    toUInt64(countIf(p = 0)) AS unlisted FROM (
                 SELECT esp, sender, campaign, from_domain, delivered,
                        toInt64(toUnixTimestamp(hour)) * 1000 AS t, {bucket} AS b, {} AS p
                 FROM deliveries FINAL WHERE {range})
             GROUP BY {SLICE_ORDER} ORDER BY {SLICE_ORDER} {SORTED_SETTINGS}",
            windows.join(", "),
            position_in_list("provider"),
        )
    }

    /// Complaints per slice as cells of (code, provider, bucket), one per
    /// token (FINAL); `np` is the number of providers plus one.
    fn complaints(&self, np: usize) -> String {
        let (range, bucket, length) = (self.range(), &self.bucket, &self.length);
        format!(
            "SELECT esp, sender, campaign, from_domain,
                    groupArray(toUInt16(((c * {np}) + p) * 4 + b)) AS cells,
                    toInt64(min(t + {length})) AS expires FROM (
                 SELECT esp, sender, campaign, from_domain, toUnixTimestamp64Milli(reported_at) AS t,
                        {bucket} AS b, {} AS c, {} AS p
                 FROM complaints FINAL WHERE {range})
             GROUP BY {SLICE_ORDER} ORDER BY {SLICE_ORDER} {SORTED_SETTINGS}",
            position_in_list("code"),
            position_in_list("provider"),
        )
    }
}

impl Reader {
    /// Starts reading the counts of the senders in `scope`.
    pub async fn open(
        client: &Client,
        scope: Scope,
        windows: &Windows,
        now_ms: i64,
    ) -> crate::error::Result<Reader> {
        let filter = scope.filter();
        let (providers, codes) = run_names(client, &filter).await?;
        let (bucket, length) = bucket_sql(windows, now_ms);
        let sql = ReadSql {
            from_ms: now_ms - windows.longest_ms(),
            now_ms,
            filter,
            bucket,
            length,
        };
        // The two large reads skip the client's type check of every row
        // (about 4 % of the scorer's own time in a profile); their columns
        // are cast to the rows' types, and the integration tests read both.
        let unchecked = client.clone().with_validation(false);
        let deliveries = unchecked
            .query(&sql.deliveries())
            .bind(&providers)
            .bind(positions(&providers))
            .fetch::<DeliveryRow<'static>>()?;
        let complaints = unchecked
            .query(&sql.complaints(providers.len() + 1))
            .bind(&codes)
            .bind(positions(&codes))
            .bind(&providers)
            .bind(positions(&providers))
            .fetch::<ComplaintRow<'static>>()?;
        Ok(Reader {
            complaints: Stream::new(complaints),
            deliveries: Stream::new(deliveries),
            next_complaint: None,
            next_delivery: None,
            pending: None,
            delivery_names: Interner::default(),
            tally: Tally::new(
                parse_codes(&codes)?,
                providers.into_iter().map(Name::from).collect(),
            ),
        })
    }

    /// The run's providers (delivering masks index them).
    pub fn providers(&self) -> &[Name] {
        &self.tally.providers
    }

    /// The next sender with rows in some window, with its slices, or `None`
    /// at the end.
    pub async fn next(&mut self) -> crate::error::Result<Option<(SenderKey, SliceCounts)>> {
        let first = match self.pending.take() {
            Some(first) => first,
            None => match self.next_slice().await? {
                Some(first) => first,
                None => return Ok(None),
            },
        };
        let ((key, slice), counts) = first;
        let mut slices = vec![(slice, counts)];
        loop {
            match self.next_slice().await? {
                Some(((k, slice), counts)) if k == key => slices.push((slice, counts)),
                other => {
                    self.pending = other;
                    return Ok(Some((key, slices)));
                }
            }
        }
    }

    /// The next slice with rows in some window, or `None` at the end.
    async fn next_slice(&mut self) -> crate::error::Result<Option<(RowKey, SenderCounts)>> {
        // Both streams' next rows are fetched together: ClickHouse computes
        // both queries at once.
        let (complaint, delivery) = tokio::join!(
            async {
                if self.next_complaint.is_none() {
                    let tally = &mut self.tally;
                    self.next_complaint = self
                        .complaints
                        .next("complaint", |row| tally.slice(&row))
                        .await?;
                }
                Ok::<_, crate::ScoringError>(())
            },
            async {
                if self.next_delivery.is_none() {
                    let names = &mut self.delivery_names;
                    self.next_delivery = self
                        .deliveries
                        .next("delivery", |row| delivered(row, names))
                        .await?;
                }
                Ok::<_, crate::ScoringError>(())
            }
        );
        complaint?;
        delivery?;
        let take_delivery = match (&self.next_complaint, &self.next_delivery) {
            (None, None) => return Ok(None),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((c, _)), Some((d, _))) => d < c,
        };
        if take_delivery {
            let (key, d) = self.next_delivery.take().expect("matched above");
            let mut counts = SenderCounts::default();
            add_deliveries(&mut counts, d);
            return Ok(Some((key, counts)));
        }
        let (key, mut counts) = self.next_complaint.take().expect("matched above");
        if self.next_delivery.as_ref().is_some_and(|(d, _)| *d == key) {
            let (_, d) = self.next_delivery.take().expect("checked above");
            add_deliveries(&mut counts, d);
        }
        Ok(Some((key, counts)))
    }
}

/// Aggregation by hash, then a sort of the grouped rows. Aggregating in
/// sorting-key order is faster once every partition is one part (1.4 vs
/// 2.0 s, 50M complaints) but slower while a partition also holds a new part,
/// the usual state of a running system (2.8 vs 2.2-2.6 s): FINAL then has
/// to merge the partition's parts in one ordered stream.
/// The columns both reads group and sort by: (esp, sender) and the slice.
const SLICE_ORDER: &str = "esp, sender, campaign, from_domain";

const SORTED_SETTINGS: &str = "SETTINGS do_not_merge_across_partitions_select_final = 1, \
                               optimize_aggregation_in_order = 0, optimize_read_in_order = 0";

/// A delivery row's key and counts.
fn delivered(
    row: DeliveryRow<'_>,
    names: &mut Interner,
) -> crate::error::Result<(RowKey, Delivered)> {
    if row.unlisted > 0 {
        return Err(unlisted("provider"));
    }
    Ok((
        names.key(row.esp, row.sender, row.campaign, row.from_domain),
        Delivered {
            messages: [row.d0, row.d1, row.d2, row.d3],
            providers: [row.p0, row.p1, row.p2, row.p3],
            expires: row.expires,
        },
    ))
}

/// Adds a sender's deliveries to its counts.
fn add_deliveries(counts: &mut SenderCounts, d: Delivered) {
    let mut any = false;
    for i in 0..COUNT {
        if d.messages[i] > 0 {
            let w = counts.window(i);
            w.delivered = d.messages[i];
            w.delivering_providers = d.providers[i].count_ones();
            counts.provider_masks[i] = d.providers[i];
            any = true;
        }
    }
    if any {
        counts.expire_at(d.expires);
    }
}

fn parse_codes(codes: &[String]) -> crate::error::Result<Vec<ComplaintCode>> {
    codes.iter().map(|c| parse_code(c)).collect()
}
