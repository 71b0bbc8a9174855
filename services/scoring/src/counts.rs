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

use foldhash::{HashMap, HashMapExt};

use clickhouse::query::RowCursor;
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::policy::{ComplaintCode, ComplaintCount, HeavyReporter, Name, Policy, WindowCounts};
use crate::windows::{Windows, COUNT};

/// (esp, sender).
pub type SenderKey = (String, String);

/// The part of a sender's mail with one campaign and one From domain (each
/// empty where the rows carry none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice {
    /// Campaign id, or empty.
    pub campaign: Name,
    /// From domain (token `dom`), or empty.
    pub domain: Name,
}

/// A sender's counts per slice of its mail, in slice order.
pub type SliceCounts = Vec<(Slice, SenderCounts)>;

/// The order both reads return rows in.
type RowKey = (SenderKey, Slice);

/// One sender's counts per window (indexed like the policy's windows), and when the
/// oldest counted row leaves a window, after which the sender must be rescored.
#[derive(Debug, Default)]
pub struct SenderCounts {
    /// Counts per window, `None` where the window holds nothing.
    pub windows: [Option<WindowCounts>; 4],
    /// Earliest time (ms) at which a counted row leaves its window.
    pub next_expiry_ms: Option<i64>,
    /// Per window, a bit per provider (of the reader's list) that delivered
    /// some of the mail: the ESP books union them across senders.
    pub provider_masks: [u64; 4],
}

impl SenderCounts {
    /// The sum of a sender's slices.
    pub fn total(slices: SliceCounts) -> SenderCounts {
        let mut slices = slices.into_iter().map(|(_, c)| c);
        let mut out = slices.next().unwrap_or_default();
        for c in slices {
            out.absorb(c);
        }
        out
    }

    /// Adds another slice's counts to these.
    fn absorb(&mut self, other: SenderCounts) {
        for (i, window) in other.windows.into_iter().enumerate() {
            self.provider_masks[i] |= other.provider_masks[i];
            let Some(o) = window else { continue };
            let mask = self.provider_masks[i];
            let w = self.window(i);
            w.delivered += o.delivered;
            w.delivering_providers = mask.count_ones();
            for c in o.complaints {
                match w
                    .complaints
                    .iter_mut()
                    .find(|x| x.code == c.code && x.provider == c.provider)
                {
                    Some(x) => x.complaints += c.complaints,
                    None => w.complaints.push(c),
                }
            }
        }
        if let Some(at) = other.next_expiry_ms {
            self.next_expiry_ms = Some(self.next_expiry_ms.map_or(at, |e| e.min(at)));
        }
    }

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
pub(crate) fn window_counts(windows: &Windows, now_ms: i64) -> String {
    (0..COUNT)
        .map(|i| format!("countIf(t >= {}) AS n{i}", now_ms - windows.ms(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A code and its count in each window.
pub(crate) type CodeCounts = (ComplaintCode, [u64; 4]);

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
struct ComplaintRow<'a> {
    esp: &'a str,
    sender: &'a str,
    campaign: &'a str,
    from_domain: &'a str,
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

fn unlisted(what: &str) -> crate::ScoringError {
    crate::ScoringError::Moved(format!(
        "a {what} appeared while scoring read its list; the next run counts it"
    ))
}

/// Every sender's counts at `now_ms` per slice, without heavy reporters
/// (see [`heavy_reporters`]), in (esp, sender) order. ClickHouse sends one
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

/// One shared [`Name`] per distinct string: a campaign or domain repeats
/// over many senders.
#[derive(Default)]
struct Interner(foldhash::HashSet<Name>);

impl Interner {
    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(n.clone());
        n
    }

    /// A row's order key.
    fn key(&mut self, esp: &str, sender: &str, campaign: &str, domain: &str) -> RowKey {
        let slice = Slice {
            campaign: self.name(campaign),
            domain: self.name(domain),
        };
        ((esp.to_string(), sender.to_string()), slice)
    }
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

impl Reader {
    /// Starts reading the counts of the senders in `scope`.
    pub async fn open(
        client: &Client,
        scope: Scope,
        windows: &Windows,
        now_ms: i64,
    ) -> crate::error::Result<Reader> {
        let from_ms = now_ms - windows.longest_ms();
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
        let np = providers.len() + 1;
        if (codes.len() + 1) * np * 4 > usize::from(u16::MAX) {
            return Err(crate::ScoringError::TooMany(format!(
                "{} codes and {} providers are too many to count in one cell",
                codes.len(),
                providers.len()
            )));
        }
        let (bucket, length) = bucket_sql(windows, now_ms);
        let windows: Vec<String> = (0..4)
            .map(|i| format!("toUInt64(sumIf(delivered, b <= {i})) AS d{i}"))
            .chain((0..4).map(|i| {
                format!(
                    "groupBitOrIf(bitShiftLeft(toUInt64(1), toUInt8(p - 1)), \
                                  b <= {i} AND delivered > 0 AND p > 0) AS p{i}"
                )
            }))
            .collect();
        // The two large reads skip the client's type check of every row
        // (about 4 % of the scorer's own time in a profile); their columns
        // are cast to the rows' types, and the integration tests read both.
        let unchecked = client.clone().with_validation(false);
        // Delivered: a newer report for an hour replaces the older (FINAL).
        let deliveries = unchecked
            .query(&format!(
                "SELECT esp, sender, campaign, from_domain, {}, toInt64(min(t + {length})) AS expires,
                        toUInt64(countIf(p = 0)) AS unlisted FROM (
                     SELECT esp, sender, campaign, from_domain, delivered,
                            toInt64(toUnixTimestamp(hour)) * 1000 AS t, {bucket} AS b, {} AS p
                     FROM deliveries FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY {SLICE_ORDER} ORDER BY {SLICE_ORDER} {SORTED_SETTINGS}",
                windows.join(", "),
                position_in_list("provider"),
            ))
            .bind(&providers)
            .bind(positions(&providers))
            .fetch::<DeliveryRow<'static>>()?;
        // Complaints: one per token (FINAL).
        let complaints = unchecked
            .query(&format!(
                "SELECT esp, sender, campaign, from_domain,
                        groupArray(toUInt16(((c * {np}) + p) * 4 + b)) AS cells,
                        toInt64(min(t + {length})) AS expires FROM (
                     SELECT esp, sender, campaign, from_domain, toUnixTimestamp64Milli(reported_at) AS t,
                            {bucket} AS b, {} AS c, {} AS p
                     FROM complaints FINAL WHERE t >= {from_ms} AND t <= {now_ms} {filter})
                 GROUP BY {SLICE_ORDER} ORDER BY {SLICE_ORDER} {SORTED_SETTINGS}",
                position_in_list("code"),
                position_in_list("provider"),
            ))
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

/// Turns complaint rows into per-window counts by code and provider.
struct Tally {
    codes: Vec<ComplaintCode>,
    providers: Vec<Name>,
    /// Tokens per bucket, indexed by (code, provider) pair; zero between rows.
    per_pair: Vec<[u64; 4]>,
    /// The pairs of the current row, in order of first appearance.
    seen: Vec<usize>,
    /// Campaign and domain names of the complaint rows.
    names: Interner,
}

impl Tally {
    fn new(codes: Vec<ComplaintCode>, providers: Vec<Name>) -> Self {
        let pairs = (codes.len() + 1) * (providers.len() + 1);
        Tally {
            codes,
            providers,
            per_pair: vec![[0; 4]; pairs],
            seen: vec![],
            names: Interner::default(),
        }
    }

    /// A slice's counts from its complaint row.
    fn slice(&mut self, row: &ComplaintRow<'_>) -> crate::error::Result<(RowKey, SenderCounts)> {
        let mut counts = SenderCounts::default();
        let np = self.providers.len() + 1;
        for &cell in &row.cells {
            let (pair, bucket) = (usize::from(cell / 4), usize::from(cell % 4));
            let Some(n) = self.per_pair.get_mut(pair) else {
                return Err(unlisted("complaint code or provider"));
            };
            if *n == [0; 4] {
                self.seen.push(pair);
            }
            n[bucket] += 1;
        }
        // A window holds its own bucket and every shorter one's.
        for pair in self.seen.drain(..) {
            let buckets = std::mem::take(&mut self.per_pair[pair]);
            let (c, p) = (pair / np, pair % np);
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
                        code: *code,
                        provider: provider.clone(),
                        complaints: n,
                    });
                }
            }
        }
        counts.expire_at(row.expires);
        let key = self
            .names
            .key(row.esp, row.sender, row.campaign, row.from_domain);
        Ok((key, counts))
    }
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

/// The senders listed in `scoring_suspects` with a reporter that may pass
/// the cap: one with more complaints than the cap in the longest window (a
/// superset of those over it in any shorter one). This pass reads without
/// FINAL (which merges a whole partition once it has a new part), groups by
/// hashes of (esp, sender) and of reporter, numbers instead of three
/// strings, and picks the senders from the list by their hash instead of
/// reading their complaints again: copies of a token and hash collisions can
/// only add candidates, which the exact count drops. Each of the three took
/// 0.5 s or more off (50M complaints).
pub async fn reporter_cap_candidates(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> crate::error::Result<Vec<SenderKey>> {
    let from_ms = now_ms - policy.windows.longest_ms();
    let suspects = listed_in("scoring_suspects");
    client
        .query(&format!(
            "SELECT esp, sender FROM scoring_suspects WHERE cityHash64(esp, sender) IN (
                 SELECT s FROM complaints
                 WHERE toUnixTimestamp64Milli(reported_at) BETWEEN {from_ms} AND {now_ms}
                   AND reporter != '' AND {suspects}
                 GROUP BY cityHash64(esp, sender) AS s, cityHash64(reporter) AS r
                 HAVING count() > {})",
            policy.max_per_reporter
        ))
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// The reporters over the cap in some window, for the senders listed in
/// `scoring_suspects` (after [`reporter_cap_candidates`], only those few):
/// per sender, (window index, reporter with its per-code counts in that
/// window). Counted once per token (FINAL).
pub async fn heavy_reporters(
    client: &Client,
    policy: &Policy,
    now_ms: i64,
) -> crate::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    let filter = listed_in("scoring_suspects");
    let from_ms = now_ms - policy.windows.longest_ms();
    // Only the (sender, provider, reporter) groups over the cap in the
    // longest window come back; [`over_cap`] checks each window.
    let rows = client
        .query(&format!(
            "SELECT esp, sender, provider, reporter, code, n0, n1, n2, n3 FROM (
                 SELECT *, sum(n3) OVER (PARTITION BY esp, sender, provider, reporter) AS total FROM (
                     SELECT esp, sender, toString(provider) AS provider,
                            reporter, toString(code) AS code, {} FROM (
                         SELECT esp, sender, provider, reporter, code,
                                toUnixTimestamp64Milli(reported_at) AS t
                         FROM complaints FINAL
                         WHERE {filter} AND t >= {from_ms} AND t <= {now_ms} AND reporter != '')
                     GROUP BY esp, sender, provider, reporter, code))
             WHERE total > {} {FINAL_SETTINGS}",
            window_counts(&policy.windows, now_ms),
            policy.max_per_reporter,
        ))
        .fetch_all::<ReporterAgg>()
        .await?;
    let mut per_reporter = PerReporter::new();
    for r in rows {
        let key = ((r.esp, r.sender), Name::from(r.provider), r.reporter);
        let code = parse_code(&r.code)?;
        add_code(&mut per_reporter, key, code, [r.n0, r.n1, r.n2, r.n3]);
    }
    Ok(over_cap(per_reporter, policy.max_per_reporter))
}

/// A complaint code read from the `complaints` table; an unknown one is an
/// error, not a guess (the table was written by another version).
pub(crate) fn parse_code(code: &str) -> crate::error::Result<ComplaintCode> {
    (code.parse()).map_err(crate::ScoringError::stored::<ricochet_kafka::UnknownCode>(
        "complaints",
    ))
}

fn parse_codes(codes: &[String]) -> crate::error::Result<Vec<ComplaintCode>> {
    codes.iter().map(|c| parse_code(c)).collect()
}

/// Per (subject, provider, reporter): the counts per code in each window.
pub(crate) type PerReporter<K> = HashMap<(K, Name, String), Vec<CodeCounts>>;

/// Adds a reporter's count of one code to `per_reporter`, summing with what
/// the same subject, reporter and code already have.
pub(crate) fn add_code<K: std::hash::Hash + Eq>(
    per_reporter: &mut PerReporter<K>,
    key: (K, Name, String),
    code: ComplaintCode,
    n: [u64; 4],
) {
    let codes = per_reporter.entry(key).or_default();
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, counts)) => counts.iter_mut().zip(n).for_each(|(a, b)| *a += b),
        None => codes.push((code, n)),
    }
}

/// The reporters over `cap` per subject: in each window, a reporter is
/// heavy if all its codes together pass the cap.
pub(crate) fn over_cap<K: std::hash::Hash + Eq + Clone>(
    per_reporter: PerReporter<K>,
    cap: u64,
) -> HashMap<K, Vec<(usize, HeavyReporter)>> {
    let mut out: HashMap<K, Vec<(usize, HeavyReporter)>> = HashMap::new();
    for ((key, provider, reporter), codes) in per_reporter {
        for i in 0..COUNT {
            let total: u64 = codes.iter().map(|(_, n)| n[i]).sum();
            if total > cap {
                let by_code = codes
                    .iter()
                    .filter(|(_, n)| n[i] > 0)
                    .map(|(code, n)| (*code, n[i]))
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice_counts(
        window: usize,
        delivered: u64,
        mask: u64,
        code: ComplaintCode,
        n: u64,
    ) -> SenderCounts {
        let mut c = SenderCounts::default();
        let w = c.window(window);
        w.delivered = delivered;
        w.delivering_providers = mask.count_ones();
        w.complaints.push(ComplaintCount {
            code,
            provider: "p1".into(),
            complaints: n,
        });
        c.provider_masks[window] = mask;
        c
    }

    #[test]
    fn a_senders_total_sums_its_slices() {
        let (unwanted, phishing) = (ComplaintCode::Unwanted, ComplaintCode::Phishing);
        let slice = |campaign: &str| Slice {
            campaign: campaign.into(),
            domain: "".into(),
        };
        let mut a = slice_counts(3, 500, 0b01, unwanted, 2);
        a.next_expiry_ms = Some(9_000);
        let mut b = slice_counts(3, 700, 0b10, unwanted, 3);
        b.window(3).complaints.push(ComplaintCount {
            code: phishing,
            provider: "p1".into(),
            complaints: 1,
        });
        b.next_expiry_ms = Some(4_000);
        let c = slice_counts(1, 10, 0b01, unwanted, 1);
        let total = SenderCounts::total(vec![(slice("a"), a), (slice("b"), b), (slice("c"), c)]);
        let w = total.windows[3].as_ref().unwrap();
        assert_eq!((w.delivered, w.delivering_providers), (1200, 2));
        assert_eq!(w.complaints.len(), 2, "one entry per (code, provider)");
        assert_eq!(w.complaints(), 6);
        assert_eq!(total.windows[1].as_ref().unwrap().delivered, 10);
        assert!(total.windows[0].is_none());
        assert_eq!(total.next_expiry_ms, Some(4_000));
        assert_eq!(total.provider_masks[3], 0b11);
    }

    #[test]
    fn a_reporters_counts_are_summed_per_code_before_the_cap() {
        let mut per_reporter = PerReporter::default();
        let key = |who: &str| ("campaign-1", Name::from("p1"), who.to_string());
        let unwanted = ComplaintCode::Unwanted;
        // Two slices of one campaign, two complaints each in the 30-day
        // window only: 4 > 3 there, under the cap in every shorter one.
        add_code(&mut per_reporter, key("r1"), unwanted, [0, 0, 0, 2]);
        add_code(&mut per_reporter, key("r1"), unwanted, [0, 0, 1, 2]);
        add_code(&mut per_reporter, key("r2"), unwanted, [0, 0, 0, 3]);
        let heavy = over_cap(per_reporter, 3);
        let found = &heavy["campaign-1"];
        assert_eq!(found.len(), 1, "only r1 passes the cap, in one window");
        let (window, reporter) = &found[0];
        assert_eq!((*window, reporter.reporter.as_str()), (3, "r1"));
        assert_eq!(reporter.by_code, vec![(unwanted, 4)]);
    }
}
