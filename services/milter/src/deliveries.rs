//! Delivered-message counts: the check milter counts every message with a
//! valid token per (esp, sender, campaign, from domain, hour) and reports
//! the counts that changed to ingest's `/v1/deliveries`, so the
//! denominator of every complaint rate comes from the mail flow itself.
//!
//! A report carries the hour's full count and replaces the previous one, so
//! the counts live in a file (written every second when they changed) and
//! a restart continues from them. A report that fails is sent again at the
//! next interval; mail never waits for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::{Claims, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Hours kept after they were reported (the API takes 60 days back, but
/// an hour is not counted into any more after it ends).
const KEEP_SECS: i64 = 48 * 3600;
/// Most items in one report request (ingest's default limit).
const REPORT_BATCH: usize = 1000;

/// One slice of a sender's mail in one hour.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slice {
    /// ESP id.
    pub esp: String,
    /// Sender id.
    pub sender: String,
    /// Campaign, if the tokens named one.
    pub campaign: Option<String>,
    /// From domain, if the tokens named one.
    pub from_domain: Option<String>,
    /// Start of the hour, seconds since the epoch.
    pub hour: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    counts: Vec<(Slice, u64)>,
    unreported: Vec<Slice>,
}

#[derive(Debug, Default)]
struct Inner {
    counts: BTreeMap<Slice, u64>,
    unreported: BTreeSet<Slice>,
    dirty: bool,
}

/// The counts, their file, and what is still to report.
#[derive(Debug)]
pub struct DeliveryCounts {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl DeliveryCounts {
    /// Opens the counts file (a missing file is an empty count).
    pub fn open(path: &Path) -> Result<DeliveryCounts> {
        let mut inner = Inner::default();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let state: State = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a counts file", path.display()))?;
            inner.counts = state.counts.into_iter().collect();
            inner.unreported = state.unreported.into_iter().collect();
        }
        Ok(DeliveryCounts {
            path: path.into(),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one delivered message of a verified token at `now`.
    pub fn record(&self, claims: &Claims, now: i64) {
        let slice = Slice {
            esp: claims.iss.clone(),
            sender: claims.sub.clone(),
            campaign: claims.cmp.clone(),
            from_domain: claims.dom.clone(),
            hour: now - now.rem_euclid(3600),
        };
        let mut inner = self.lock();
        *inner.counts.entry(slice.clone()).or_default() += 1;
        inner.unreported.insert(slice);
        inner.dirty = true;
    }

    /// The count of a slice.
    pub fn count(&self, slice: &Slice) -> u64 {
        self.lock().counts.get(slice).copied().unwrap_or(0)
    }

    /// Writes the counts file if anything changed (write, then rename).
    pub fn save(&self) -> Result<()> {
        let state = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            let cutoff = unix_now() - KEEP_SECS;
            let Inner {
                counts, unreported, ..
            } = &mut *inner;
            counts.retain(|s, _| s.hour >= cutoff || unreported.contains(s));
            State {
                counts: counts.iter().map(|(s, n)| (s.clone(), *n)).collect(),
                unreported: unreported.iter().cloned().collect(),
            }
        };
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&state)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))
    }

    /// The slices to report, with their counts.
    fn pending(&self) -> Vec<(Slice, u64)> {
        let inner = self.lock();
        inner
            .unreported
            .iter()
            .map(|s| (s.clone(), inner.counts.get(s).copied().unwrap_or(0)))
            .collect()
    }

    /// Marks slices reported at the counts sent (a slice counted into since
    /// stays pending).
    fn reported(&self, sent: &[(Slice, u64)]) {
        let mut inner = self.lock();
        for (slice, n) in sent {
            if inner.counts.get(slice) == Some(n) {
                inner.unreported.remove(slice);
            }
        }
        inner.dirty = true;
    }
}

/// Who reports the counts, and where.
pub struct Reporter {
    /// Ingest base URL.
    pub ingest_url: String,
    /// The provider's id.
    pub provider: String,
    /// The provider's key.
    pub key: Arc<SigningKey>,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Reporter {
    /// Sends the pending counts; an error leaves them pending.
    pub async fn report(&self, counts: &DeliveryCounts) -> Result<usize> {
        let pending = counts.pending();
        for chunk in pending.chunks(REPORT_BATCH) {
            self.post(chunk).await?;
            counts.reported(chunk);
        }
        Ok(pending.len())
    }

    async fn post(&self, chunk: &[(Slice, u64)]) -> Result<()> {
        let items: Vec<_> = chunk
            .iter()
            .map(|(s, n)| item(s, *n))
            .collect::<Result<_>>()?;
        let bearer = mint_bearer(
            &self.key,
            &self.provider,
            "ricochet-ingest",
            unix_now(),
            300,
        )?;
        let response = self
            .http
            .post(format!(
                "{}/v1/deliveries",
                self.ingest_url.trim_end_matches('/')
            ))
            .bearer_auth(bearer)
            .json(&json!({ "deliveries": items }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("posting delivery counts")?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("ingest answered {status}: {}", body["reason"]);
        }
        for r in body["results"].as_array().into_iter().flatten() {
            if r["verdict"] != "accepted" {
                tracing::warn!(result = %r, "a delivery count was refused");
            }
        }
        Ok(())
    }
}

fn item(slice: &Slice, delivered: u64) -> Result<serde_json::Value> {
    let hour = OffsetDateTime::from_unix_timestamp(slice.hour)?.format(&Rfc3339)?;
    let mut item = json!({
        "esp": slice.esp, "sender": slice.sender, "hour": hour, "delivered": delivered,
    });
    if let Some(c) = &slice.campaign {
        item["campaign"] = json!(c);
    }
    if let Some(d) = &slice.from_domain {
        item["from_domain"] = json!(d);
    }
    Ok(item)
}

/// Saves the counts every second and reports them every `interval`, until
/// the process ends.
pub async fn run(counts: Arc<DeliveryCounts>, reporter: Option<Reporter>, interval: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if let Err(e) = counts.save() {
            tracing::error!(error = %e, "counts file not written");
        }
        let Some(reporter) = &reporter else { continue };
        if last_report.elapsed() < interval {
            continue;
        }
        last_report = tokio::time::Instant::now();
        match reporter.report(&counts).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(slices = n, "delivery counts reported"),
            Err(e) => {
                tracing::warn!(error = %e, "delivery counts not reported; retrying next interval")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_token::Nature;

    fn claims(sub: &str) -> Claims {
        Claims {
            iss: "esp.example".into(),
            sub: sub.into(),
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            iat: 0,
            exp: 1,
            nat: Nature::Marketing,
            cmp: Some("spring".into()),
            rdm: "example.net".into(),
            rcb: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            dom: None,
        }
    }

    #[test]
    fn counts_survive_a_restart_and_stay_pending_until_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts.json");
        let now = unix_now();
        let counts = DeliveryCounts::open(&path).unwrap();
        counts.record(&claims("a"), now);
        counts.record(&claims("a"), now);
        counts.record(&claims("b"), now);
        counts.save().unwrap();
        let again = DeliveryCounts::open(&path).unwrap();
        let pending = again.pending();
        assert_eq!(pending.iter().map(|(_, n)| n).sum::<u64>(), 3);
        let slice_a = pending[0].0.clone();
        assert_eq!((slice_a.hour % 3600, again.count(&slice_a)), (0, 2));
        again.record(&claims("a"), now);
        again.reported(&pending);
        let left = again.pending();
        assert_eq!(
            left,
            vec![(slice_a, 3)],
            "a counted into since the report stays pending"
        );
    }
}
