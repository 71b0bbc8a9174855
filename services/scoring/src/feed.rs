//! The complaint feed: every accepted complaint, once, to its ESP, so it can
//! stop mailing the person who complained.
//!
//! One writer (this service is the single scoring instance of its database)
//! reads `complaints` in load order and appends to `complaint_feed`,
//! numbering each ESP's entries 1, 2, 3, ... A token loaded twice (a retry,
//! a second provider) is fed once: every candidate is looked up in the feed
//! first. The feed is the outbox of `GET /v1/complaints`, the ESP's webhook
//! and `feedback.v1` (see [`crate::dispatch`]).
//!
//! Rows are read once they are [`SETTLE_MS`] old by the server's clock. An
//! insert that became visible later than that is caught at the next step by
//! [`FeedWriter::trail`], which looks [`TRAIL_MS`] behind the mark for rows
//! the writer has not fed, or failing that by [`FeedWriter::sweep`], which
//! looks [`SWEEP_MS`] back for loaded rows missing from the feed. (A fixed
//! settle of 200 ms cost every complaint 200 ms to cover the few inserts
//! that take that long.)

use clickhouse::{Client, Row};
use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Rows read per pass (a pass repeats while pages come back full).
pub const PAGE: u64 = 4_000;
/// How old (server clock) a loaded row must be before the feed reads it.
pub const SETTLE_MS: i64 = 50;
/// How far behind the mark each step looks again for rows that became
/// visible late (see [`FeedWriter::trail`]).
pub const TRAIL_MS: i64 = 2_000;
/// How far behind the feed's mark a sweep looks for late rows.
pub const SWEEP_MS: i64 = 300_000;

/// One entry of the feed (a row of `complaint_feed`).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FeedEntry {
    /// ESP id.
    pub esp: String,
    /// Position in the ESP's feed, from 1.
    pub seq: u64,
    /// Token id.
    pub jti: String,
    /// Sender id.
    pub sender: String,
    /// Campaign id, or empty.
    pub campaign: String,
    /// Complaint code.
    pub code: String,
    /// Declared nature.
    pub nature: String,
    /// Provider that reported it.
    pub provider: String,
    /// Recipient domain.
    pub recipient_domain: String,
    /// The token's recipient binding, or empty (rows loaded before it was kept).
    pub rcb: String,
    /// When the user complained (ms).
    pub reported_at: i64,
    /// When the complaint was loaded (ms).
    pub loaded_at: i64,
    /// When the ESP minted the token (ms): no copy of it was loaded long
    /// before (see [`COPY_MARGIN_MS`]).
    pub token_iat: i64,
}

/// The columns of [`FeedEntry`], for reads of `complaint_feed`.
pub const FEED_COLUMNS: &str = "toString(esp) AS esp, seq, jti, sender, campaign, \
    toString(code) AS code, toString(nature) AS nature, toString(provider) AS provider, \
    toString(recipient_domain) AS recipient_domain, rcb, \
    toUnixTimestamp64Milli(reported_at) AS reported_at, toUnixTimestamp64Milli(loaded_at) AS loaded_at, \
    toUnixTimestamp64Milli(token_iat) AS token_iat";

/// The columns of a complaint as the feed reads it (`seq` set later). The
/// aliases shadow columns, so reads filter in a subquery first.
const CANDIDATE_COLUMNS: &str = "toString(esp) AS esp, toUInt64(0) AS seq, jti, sender, campaign, \
    toString(code) AS code, toString(nature) AS nature, toString(provider) AS provider, \
    toString(recipient_domain) AS recipient_domain, rcb, \
    toUnixTimestamp64Milli(reported_at) AS reported_at, toUnixTimestamp64Milli(loaded_at) AS loaded_at, \
    toInt64(toUnixTimestamp(token_iat)) * 1000 AS token_iat";

/// How long before its `iat` a copy of a token may have been loaded, at
/// most: ingest refuses tokens issued more than its clock skew (60 s by
/// default) ahead, and the ingest and ClickHouse clocks differ by less
/// than the rest.
pub const COPY_MARGIN_MS: i64 = 10 * 60_000;
/// How long (by load time) the writer remembers what it fed, so that the
/// copy lookup of fresh tokens needs no query (about 43 MB at 5,000
/// complaints/s).
const RECENT_MS: i64 = COPY_MARGIN_MS + 2 * 60_000;

/// The JSON of one feed entry as the ESP receives it (API, webhook, topic).
/// `not-spam` is the positive signal: the user said the mail was wanted.
pub fn entry_json(e: &FeedEntry) -> Value {
    let signal = if e.code == "not-spam" {
        "positive"
    } else {
        "negative"
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    json!({
        "esp": e.esp, "seq": e.seq, "jti": e.jti, "sender": e.sender,
        "campaign": some(&e.campaign), "code": e.code, "signal": signal,
        "nature": e.nature, "provider": e.provider,
        "recipient_domain": e.recipient_domain, "rcb": some(&e.rcb),
        "reported_at_ms": e.reported_at,
    })
}

/// What one pass fed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedReport {
    /// Complaints read.
    pub read: usize,
    /// New entries appended.
    pub fed: usize,
    /// Copies of tokens already fed (or twice in the page), skipped.
    pub duplicates: usize,
    /// Load time (ms) of the last complaint read, if any.
    pub last_loaded_ms: Option<i64>,
}

impl FeedReport {
    /// Adds a later pass's outcome to this one.
    fn add(&mut self, later: &FeedReport) {
        self.read += later.read;
        self.fed += later.fed;
        self.duplicates += later.duplicates;
        self.last_loaded_ms = later.last_loaded_ms.or(self.last_loaded_ms);
    }
}

/// Appends new complaints to the feed. Holds the next `seq` per ESP and the
/// (load time, jti) read up to; both are rebuilt from the feed on open, so
/// a restart neither skips nor repeats an entry.
pub struct FeedWriter {
    client: Client,
    next_seq: HashMap<String, u64>,
    mark: (i64, String),
    /// What this writer fed, by jti hash: every feed entry loaded at or
    /// after `covered_from` (ms) is here.
    recent: Recent,
}

/// The jtis (64-bit hashes) a writer fed lately, with their load times.
struct Recent {
    fed: HashMap<u64, i64>,
    covered_from: i64,
}

impl Recent {
    fn hash(jti: &str) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::default().hash_one(jti)
    }

    /// Whether `row` may be in the feed already: its hash was fed lately,
    /// or a copy may have been fed before the memory begins.
    fn may_be_fed(&self, row: &FeedEntry) -> bool {
        self.fed.contains_key(&Self::hash(&row.jti))
            || row.token_iat - COPY_MARGIN_MS < self.covered_from
    }

    /// Remembers `fed`, forgetting what was loaded [`RECENT_MS`] before `mark_ms`.
    fn add(&mut self, fed: &[FeedEntry], mark_ms: i64) {
        for e in fed {
            let at = self.fed.entry(Self::hash(&e.jti)).or_insert(e.loaded_at);
            *at = (*at).max(e.loaded_at);
        }
        // Forgets in steps of a minute: a retain walks the whole map.
        let horizon = mark_ms - RECENT_MS;
        if horizon > self.covered_from + 60_000 {
            self.fed.retain(|_, at| *at >= horizon);
            self.covered_from = horizon;
        }
    }
}

impl FeedWriter {
    /// Opens the feed: the next `seq` of each ESP and where reading stopped.
    pub async fn open(client: Client) -> clickhouse::error::Result<FeedWriter> {
        let heads: Vec<(String, u64)> = client
            .query("SELECT toString(esp), max(seq) FROM complaint_feed GROUP BY esp")
            .fetch_all()
            .await?;
        let mark: i64 = client
            .query("SELECT toInt64(ifNull(max(toUnixTimestamp64Milli(loaded_at)), 0)) FROM complaint_feed")
            .fetch_one()
            .await?;
        Ok(FeedWriter {
            client,
            next_seq: heads.into_iter().map(|(esp, seq)| (esp, seq + 1)).collect(),
            // Rows loaded at the mark itself are read again; the lookup
            // drops those already fed.
            mark: (mark, String::new()),
            recent: Recent {
                fed: HashMap::default(),
                covered_from: mark + 1,
            },
        })
    }

    /// Feeds the next page of settled complaints in (load time, jti) order.
    pub async fn pass(&mut self) -> clickhouse::error::Result<FeedReport> {
        let (at, jti) = &self.mark;
        let rows: Vec<FeedEntry> = self
            .client
            .query(&format!(
                "SELECT {CANDIDATE_COLUMNS} FROM (
                     SELECT * FROM complaints
                     WHERE loaded_at >= fromUnixTimestamp64Milli(?)
                       AND (loaded_at, jti) > (fromUnixTimestamp64Milli(?), ?)
                       AND loaded_at <= now64(3) - toIntervalMillisecond({SETTLE_MS})
                     ORDER BY loaded_at, jti LIMIT {PAGE})
                 ORDER BY loaded_at, jti"
            ))
            .bind(*at)
            .bind(*at)
            .bind(jti)
            .fetch_all()
            .await?;
        if let Some(last) = rows.last() {
            let mark = (last.loaded_at, last.jti.clone());
            let report = self.append(rows).await?;
            self.mark = mark;
            return Ok(report);
        }
        Ok(FeedReport::default())
    }

    /// Feeds the rows loaded in the [`TRAIL_MS`] up to the mark that this
    /// writer has not fed: inserts that became visible after the pass that
    /// read up to their load time. Cheap: only the jtis of those seconds
    /// are read, and checked against what the writer remembers feeding.
    pub async fn trail(&mut self) -> clickhouse::error::Result<FeedReport> {
        let to = self.mark.0;
        // Before `covered_from`, the memory cannot tell; the sweep does.
        let from = (to - TRAIL_MS).max(self.recent.covered_from - 1);
        if from >= to {
            return Ok(FeedReport::default());
        }
        let range =
            "loaded_at > fromUnixTimestamp64Milli(?) AND loaded_at <= fromUnixTimestamp64Milli(?)";
        let jtis: Vec<String> = self
            .client
            .query(&format!("SELECT jti FROM complaints WHERE {range}"))
            .bind(from)
            .bind(to)
            .fetch_all()
            .await?;
        // At most a page per step (a query's text is bounded); the next
        // step takes the rest.
        let missing: Vec<String> = jtis
            .into_iter()
            .filter(|j| !self.recent.fed.contains_key(&Recent::hash(j)))
            .take(PAGE as usize)
            .collect();
        if missing.is_empty() {
            return Ok(FeedReport::default());
        }
        let rows: Vec<FeedEntry> = self
            .client
            .query(&format!(
                "SELECT {CANDIDATE_COLUMNS} FROM (
                     SELECT * FROM complaints WHERE {range} AND has(?, jti)
                     ORDER BY loaded_at, jti)
                 ORDER BY loaded_at, jti"
            ))
            .bind(from)
            .bind(to)
            .bind(missing)
            .fetch_all()
            .await?;
        let mut report = self.append(rows).await?;
        // The mark stays: these rows are behind it.
        report.last_loaded_ms = None;
        Ok(report)
    }

    /// Feeds complaints loaded up to [`SWEEP_MS`] before the mark that are
    /// missing from the feed (see [`late_rows`]).
    pub async fn sweep(&mut self) -> clickhouse::error::Result<FeedReport> {
        let rows = late_rows(&self.client, self.mark.0).await?;
        self.append(rows).await
    }

    /// Load time (ms) the writer has read up to.
    pub fn mark_ms(&self) -> i64 {
        self.mark.0
    }

    /// Numbers the complaints not fed yet and appends them in one insert;
    /// those already fed (or twice in `rows`) are counted as duplicates.
    pub async fn append(&mut self, rows: Vec<FeedEntry>) -> clickhouse::error::Result<FeedReport> {
        let mut report = FeedReport {
            read: rows.len(),
            last_loaded_ms: rows.last().map(|r| r.loaded_at),
            ..Default::default()
        };
        let fed = self.already_fed(&rows).await?;
        let mut seen: HashSet<&str> = HashSet::default();
        let mut next_seq = self.next_seq.clone();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if fed.contains(&row.jti) || !seen.insert(&row.jti) {
                report.duplicates += 1;
                continue;
            }
            let seq = next_seq.entry(row.esp.clone()).or_insert(1);
            out.push(FeedEntry {
                seq: *seq,
                ..row.clone()
            });
            *seq += 1;
        }
        if !out.is_empty() {
            let mut insert = self.client.insert::<FeedEntry>("complaint_feed").await?;
            for e in &out {
                insert.write(e).await?;
            }
            insert.end().await?;
        }
        // Only an insert that went through moves the numbering on.
        self.next_seq = next_seq;
        self.recent.add(&out, self.mark.0);
        report.fed = out.len();
        Ok(report)
    }

    /// The jtis of `rows` already in the feed (any ESP: a jti is one
    /// token). Only rows that [`Recent`] cannot rule out are looked up, and
    /// only among entries loaded after the earliest of their `iat`s less
    /// [`COPY_MARGIN_MS`]: the lookup scanned the whole feed's jtis, and
    /// held the feed up by 50-300 ms a pass at 300,000 entries.
    async fn already_fed(&self, rows: &[FeedEntry]) -> clickhouse::error::Result<HashSet<String>> {
        let maybe: Vec<&FeedEntry> = rows.iter().filter(|r| self.recent.may_be_fed(r)).collect();
        let Some(from) = maybe.iter().map(|r| r.token_iat - COPY_MARGIN_MS).min() else {
            return Ok(HashSet::default());
        };
        let jtis: Vec<&str> = maybe.iter().map(|r| r.jti.as_str()).collect();
        let found: Vec<String> = self
            .client
            .query("SELECT jti FROM complaint_feed WHERE loaded_at >= fromUnixTimestamp64Milli(?) AND has(?, jti)")
            .bind(from)
            .bind(jtis)
            .fetch_all()
            .await?;
        Ok(found.into_iter().collect())
    }
}

/// Complaints loaded in the [`SWEEP_MS`] up to `mark_ms` that are missing
/// from the feed: inserts that became visible after the pass that should
/// have read them went by. Runs beside the writer, not in its way (a sweep
/// reads minutes of complaints); the writer's [`FeedWriter::append`] drops
/// any the passes fed meanwhile.
pub async fn late_rows(client: &Client, mark_ms: i64) -> clickhouse::error::Result<Vec<FeedEntry>> {
    let from = mark_ms - SWEEP_MS;
    client
        .query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM (
                 SELECT * FROM complaints
                 WHERE loaded_at >= fromUnixTimestamp64Milli(?) AND loaded_at <= fromUnixTimestamp64Milli(?)
                   AND jti NOT IN (SELECT jti FROM complaint_feed
                                   WHERE loaded_at >= fromUnixTimestamp64Milli(?))
                 ORDER BY loaded_at, jti LIMIT {PAGE})
             ORDER BY loaded_at, jti"
        ))
        .bind(from)
        .bind(mark_ms)
        .bind(from)
        .fetch_all()
        .await
}

/// Passes between two sweeps (about 30 s at the default interval).
const SWEEP_EVERY: u32 = 120;
/// Most pages one step reads before the metrics are updated and the next
/// step (which may append a sweep's rows) begins.
const PAGES_PER_STEP: usize = 10;

/// Runs the feed for good: every `every`, appends new complaints to the
/// feed; beside it, every `every`, sends what Kafka and the webhooks have
/// not yet accepted (a slow webhook never holds up the feed), and every
/// [`SWEEP_EVERY`] intervals looks for late rows (a sweep took a second or
/// more at 5,000 complaints/s and held the feed up while it ran). An error
/// reopens the writer from the table (its numbering may be stale).
pub async fn serve(
    client: Client,
    dispatcher: std::sync::Arc<crate::dispatch::Dispatcher>,
    metrics: crate::metrics::Metrics,
    every: std::time::Duration,
) {
    let dm = metrics.clone();
    tokio::spawn(async move {
        let mut streak = crate::streak::Streak::default();
        loop {
            let outbox = crate::dispatch::Outbox::Complaints;
            match dispatcher.run_outbox(outbox, unix_ms()).await {
                Ok(r) => {
                    streak.ok();
                    crate::dispatch::count(&dm, outbox, &r);
                }
                Err(e) => streak.failed("complaint feed dispatch failed; retrying", &e),
            }
            tokio::time::sleep(streak.pause(every)).await;
        }
    });
    let (mark_tx, mark_rx) = tokio::sync::watch::channel(None);
    let (late_tx, mut late_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(sweeper(
        client.clone(),
        mark_rx,
        late_tx,
        every * SWEEP_EVERY,
    ));
    let mut writer: Option<FeedWriter> = None;
    let mut streak = crate::streak::Streak::default();
    loop {
        let started = std::time::Instant::now();
        let late = late_rx.try_recv().ok();
        match step(&client, &mut writer, late).await {
            Ok(report) => {
                streak.ok();
                record(&metrics, &report);
            }
            Err(e) => {
                streak.failed("complaint feed pass failed; reopening the feed", &e);
                writer = None;
            }
        }
        mark_tx.send_replace(writer.as_ref().map(FeedWriter::mark_ms));
        // Steps start `every` apart (a step's own time is not added to the
        // wait of the rows that land meanwhile), or back off after failures.
        tokio::time::sleep(streak.pause(every).saturating_sub(started.elapsed())).await;
    }
}

/// Every `every` (first at once), hands the writer the late rows behind its
/// latest mark. Rows lost with a failed step are found again next time.
async fn sweeper(
    client: Client,
    mut mark: tokio::sync::watch::Receiver<Option<i64>>,
    late: tokio::sync::mpsc::Sender<Vec<FeedEntry>>,
    every: std::time::Duration,
) {
    let mut streak = crate::streak::Streak::default();
    loop {
        // Waits for the writer's first mark (and after a failure, the next).
        let Ok(mark_ms) = mark
            .wait_for(Option::is_some)
            .await
            .map(|m| m.expect("waited for"))
        else {
            return;
        };
        match late_rows(&client, mark_ms).await {
            Ok(rows) => {
                streak.ok();
                if !rows.is_empty() && late.send(rows).await.is_err() {
                    return;
                }
            }
            Err(e) => streak.failed("complaint feed sweep failed; retrying", &e),
        }
        tokio::time::sleep(every).await;
    }
}

/// Puts one step's outcome in the metrics.
fn record(metrics: &crate::metrics::Metrics, report: &FeedReport) {
    let feed = &metrics.feed;
    use crate::metrics::FeedOutcome;
    feed.with_label_values(&[FeedOutcome::Fed.as_str()])
        .inc_by(report.fed as u64);
    feed.with_label_values(&[FeedOutcome::Duplicate.as_str()])
        .inc_by(report.duplicates as u64);
    let now_ms = unix_ms();
    let lag = report
        .last_loaded_ms
        .map_or(0.0, |at| (now_ms - at) as f64 / 1e3);
    metrics.feed_lag_seconds.set(lag.max(0.0));
    metrics.feed_last_success.set(now_ms / 1000);
}

/// One step: open the writer if needed, append a sweep's late rows if
/// any, read up to [`PAGES_PER_STEP`] pages.
async fn step(
    client: &Client,
    writer: &mut Option<FeedWriter>,
    late: Option<Vec<FeedEntry>>,
) -> clickhouse::error::Result<FeedReport> {
    if writer.is_none() {
        *writer = Some(FeedWriter::open(client.clone()).await?);
    }
    let w = writer.as_mut().expect("opened above");
    let mut total = match late {
        Some(rows) => w.append(rows).await?,
        None => FeedReport::default(),
    };
    total.add(&w.trail().await?);
    for _ in 0..PAGES_PER_STEP {
        let r = w.pass().await?;
        total.add(&r);
        if r.read < PAGE as usize {
            break;
        }
    }
    Ok(total)
}

/// The local clock, Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads one ESP's feed after `since`, at most `limit` entries, in order.
pub async fn read(
    client: &Client,
    esp: &str,
    since: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<FeedEntry>> {
    client
        .query(&format!(
            "SELECT {FEED_COLUMNS} FROM complaint_feed WHERE esp = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(esp)
        .bind(since)
        .bind(limit)
        .fetch_all()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(jti: &str, loaded_at: i64, token_iat: i64) -> FeedEntry {
        FeedEntry {
            esp: "e".into(),
            seq: 0,
            jti: jti.into(),
            sender: "s".into(),
            campaign: String::new(),
            code: "unwanted".into(),
            nature: "marketing".into(),
            provider: "p".into(),
            recipient_domain: "d".into(),
            rcb: String::new(),
            reported_at: loaded_at,
            loaded_at,
            token_iat,
        }
    }

    #[test]
    fn only_tokens_fed_lately_or_older_than_the_memory_may_be_in_the_feed() {
        let opened_at = 1_000 * 60_000;
        let mut recent = Recent {
            fed: HashMap::default(),
            covered_from: opened_at,
        };
        let fresh = opened_at + COPY_MARGIN_MS;
        assert!(!recent.may_be_fed(&entry("new", fresh, fresh)));
        assert!(
            recent.may_be_fed(&entry("old", fresh, fresh - 1)),
            "a copy may have been fed before the writer opened"
        );
        recent.add(&[entry("new", fresh, fresh)], fresh);
        assert!(recent.may_be_fed(&entry("new", fresh + 1, fresh)));
        // Much later the memory forgets it, and says so by where it begins.
        let later = fresh + RECENT_MS + 120_000;
        recent.add(&[], later);
        assert_eq!(recent.covered_from, later - RECENT_MS);
        assert!(recent.fed.is_empty());
        assert!(recent.may_be_fed(&entry("new", later, fresh)));
        assert!(!recent.may_be_fed(&entry("other", later, later)));
    }

    #[test]
    fn not_spam_is_the_positive_signal_and_empty_fields_are_null() {
        let e = FeedEntry {
            esp: "esp-a.example".into(),
            seq: 7,
            jti: "j".into(),
            sender: "s".into(),
            campaign: String::new(),
            code: "not-spam".into(),
            nature: "marketing".into(),
            provider: "p".into(),
            recipient_domain: "mail.example".into(),
            rcb: String::new(),
            reported_at: 5,
            loaded_at: 6,
            token_iat: 4,
        };
        let j = entry_json(&e);
        assert_eq!(j["signal"], "positive");
        assert_eq!(j["campaign"], Value::Null);
        assert_eq!(j["rcb"], Value::Null);
        assert!(j.get("reporter").is_none() && j.get("loaded_at").is_none());
        let unwanted = FeedEntry {
            code: "unwanted".into(),
            ..e
        };
        assert_eq!(entry_json(&unwanted)["signal"], "negative");
    }
}
