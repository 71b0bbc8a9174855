//! The feed's single writer: reads new complaints in load order, drops
//! copies of tokens already fed, numbers the rest per ESP and appends them.

use clickhouse::Client;
use foldhash::{HashMap, HashSet};

use super::{FeedEntry, FeedReport, PAGE, SETTLE_MS, SWEEP_MS, TRAIL_MS};
use crate::partition::Partition;
use crate::store::feed as store;

/// How long before its `iat` a copy of a token may have been loaded, at
/// most: ingest refuses tokens issued more than its clock skew (60 s by
/// default) ahead, and the ingest and ClickHouse clocks differ by less
/// than the rest.
pub const COPY_MARGIN_MS: i64 = 10 * 60_000;
/// How long (by load time) the writer remembers what it fed, so that the
/// copy lookup of fresh tokens needs no query (about 43 MB at 5,000
/// complaints/s).
const RECENT_MS: i64 = COPY_MARGIN_MS + 2 * 60_000;

/// Appends new complaints to the feed. Holds the next `seq` per ESP and the
/// (load time, jti) read up to; both are rebuilt from the feed on open, so
/// a restart neither skips nor repeats an entry.
pub struct FeedWriter {
    client: Client,
    /// The ESPs whose feed this writer numbers (it is their only writer).
    part: Partition,
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

    /// Remembers tokens now in the feed, forgetting what was loaded
    /// [`RECENT_MS`] before `mark_ms`.
    fn add<'a>(&mut self, fed: impl IntoIterator<Item = &'a FeedEntry>, mark_ms: i64) {
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
    /// Opens the feed of the partition's ESPs: the next `seq` of each and
    /// where reading stopped.
    pub async fn open(client: Client, part: Partition) -> crate::error::Result<FeedWriter> {
        let (heads, mark) = store::position(&client, part).await?;
        Ok(FeedWriter {
            client,
            part,
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
    pub async fn pass(&mut self) -> crate::error::Result<FeedReport> {
        let (at, jti) = &self.mark;
        let rows =
            store::settled_after(&self.client, self.part, (*at, jti), (SETTLE_MS, PAGE)).await?;
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
    pub async fn trail(&mut self) -> crate::error::Result<FeedReport> {
        let to = self.mark.0;
        // Before `covered_from`, the memory cannot tell; the sweep does.
        let from = (to - TRAIL_MS).max(self.recent.covered_from - 1);
        if from >= to {
            return Ok(FeedReport::default());
        }
        let jtis = store::jtis_loaded(&self.client, self.part, (from, to)).await?;
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
        let rows = store::loaded_among(&self.client, (from, to), missing).await?;
        let mut report = self.append(rows).await?;
        // The mark stays: these rows are behind it.
        report.last_loaded_ms = None;
        Ok(report)
    }

    /// Feeds complaints loaded up to [`SWEEP_MS`] before the mark that are
    /// missing from the feed (see [`late_rows`]).
    pub async fn sweep(&mut self) -> crate::error::Result<FeedReport> {
        let rows = late_rows(&self.client, self.part, self.mark.0).await?;
        self.append(rows).await
    }

    /// Load time (ms) the writer has read up to.
    pub fn mark_ms(&self) -> i64 {
        self.mark.0
    }

    /// Numbers the complaints not fed yet and appends them in one insert;
    /// those already fed (or twice in `rows`) are counted as duplicates.
    pub async fn append(&mut self, rows: Vec<FeedEntry>) -> crate::error::Result<FeedReport> {
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
            crate::store::insert(&self.client, "complaint_feed", &out).await?;
        }
        // Only an insert that went through moves the numbering on.
        self.next_seq = next_seq;
        // The copies found in the feed are remembered too: else each step's
        // look behind the mark would read them again and count them again.
        let copies = rows.iter().filter(|r| fed.contains(&r.jti));
        self.recent.add(out.iter().chain(copies), self.mark.0);
        report.fed = out.len();
        Ok(report)
    }

    /// The jtis of `rows` already in the feed (any ESP: a jti is one
    /// token). Only rows that [`Recent`] cannot rule out are looked up, and
    /// only among entries loaded after the earliest of their `iat`s less
    /// [`COPY_MARGIN_MS`]: the lookup scanned the whole feed's jtis, and
    /// held the feed up by 50-300 ms a pass at 300,000 entries.
    async fn already_fed(&self, rows: &[FeedEntry]) -> crate::error::Result<HashSet<String>> {
        let maybe: Vec<&FeedEntry> = rows.iter().filter(|r| self.recent.may_be_fed(r)).collect();
        let Some(from) = maybe.iter().map(|r| r.token_iat - COPY_MARGIN_MS).min() else {
            return Ok(HashSet::default());
        };
        let jtis: Vec<&str> = maybe.iter().map(|r| r.jti.as_str()).collect();
        let found = store::fed_among(&self.client, from, jtis).await?;
        Ok(found.into_iter().collect())
    }
}

/// Complaints loaded in the [`SWEEP_MS`] up to `mark_ms` that are missing
/// from the feed: inserts that became visible after the pass that should
/// have read them went by. Runs beside the writer, not in its way (a sweep
/// reads minutes of complaints); the writer's [`FeedWriter::append`] drops
/// any the passes fed meanwhile.
pub async fn late_rows(
    client: &Client,
    part: Partition,
    mark_ms: i64,
) -> crate::error::Result<Vec<FeedEntry>> {
    store::missing(client, part, (mark_ms - SWEEP_MS, mark_ms), PAGE).await
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
}
