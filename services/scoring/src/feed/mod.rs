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
//!
//! [`writer`] holds the writer and the copy lookup; [`service`] the loops
//! that run it, the sweep and the dispatch.

use serde_json::{json, Value};

pub mod service;
pub mod writer;

pub use service::serve;
pub use writer::{late_rows, FeedWriter, COPY_MARGIN_MS};

/// Rows read per pass (a pass repeats while pages come back full).
pub const PAGE: u64 = 4_000;
/// How old (server clock) a loaded row must be before the feed reads it.
pub const SETTLE_MS: i64 = 50;
/// How far behind the mark each step looks again for rows that became
/// visible late (see [`FeedWriter::trail`]).
pub const TRAIL_MS: i64 = 2_000;
/// How far behind the feed's mark a sweep looks for late rows.
pub const SWEEP_MS: i64 = 300_000;

pub use crate::store::feed::{read, FeedEntry, FEED_COLUMNS};

/// The JSON of one feed entry as the ESP receives it (API, webhook, topic).
/// `not-spam` is the positive signal: the user said the mail was wanted.
pub fn entry_json(e: &FeedEntry) -> Value {
    let positive = e
        .code
        .parse::<ricochet_kafka::ComplaintCode>()
        .is_ok_and(|c| c.is_positive());
    let signal = if positive { "positive" } else { "negative" };
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
    pub(crate) fn add(&mut self, later: &FeedReport) {
        self.read += later.read;
        self.fed += later.fed;
        self.duplicates += later.duplicates;
        self.last_loaded_ms = later.last_loaded_ms.or(self.last_loaded_ms);
    }
}

/// The local clock, Unix milliseconds.
pub use ricochet_token::verify::unix_now_ms as unix_ms;

#[cfg(test)]
mod tests {
    use super::*;

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
