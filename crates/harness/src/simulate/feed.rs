//! What each ESP's complaint feed holds at the end of the simulation: one
//! entry per accepted complaint, read like an ESP reads it (signed pages of
//! `GET /v1/complaints`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use ricochet_token::VerifyingKey;
use serde_json::Value;

use super::{Participants, ESPS};
use crate::api::fetch_pages;

/// Each ESP's feed entries, in feed order.
pub struct Feeds(pub Vec<Vec<Value>>);

impl Feeds {
    /// All entries across ESPs.
    pub fn total(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }
}

/// Reads every ESP's feed until it holds `expected` entries in all (the
/// feed trails the load by about a second) or `patience` passes.
pub async fn read_all(
    http: &reqwest::Client,
    api: &str,
    p: &Participants,
    keys: &BTreeMap<String, VerifyingKey>,
    (expected, patience): (usize, Duration),
) -> Result<Feeds> {
    let deadline = Instant::now() + patience;
    loop {
        let mut feeds = vec![];
        for (i, esp) in ESPS.iter().enumerate() {
            let route = (api, "/v1/complaints");
            let (items, _) = fetch_pages(http, route, &p.esps[i], esp, 0, keys, |_| {}).await?;
            feeds.push(items);
        }
        let feeds = Feeds(feeds);
        if feeds.total() >= expected || Instant::now() >= deadline {
            return Ok(feeds);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints what each ESP's feed holds.
pub fn print(feeds: &Feeds) {
    for (esp, items) in ESPS.iter().zip(&feeds.0) {
        let positive = items.iter().filter(|i| i["signal"] == "positive").count();
        let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
        for i in items {
            *by_code.entry(i["code"].as_str().unwrap_or("")).or_default() += 1;
        }
        let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{esp} received {} complaint(s) in its feed ({positive} not-spam: {}), each with jti, sender, campaign and rcb to suppress the recipient",
            items.len(),
            codes.join(", ")
        );
    }
}
