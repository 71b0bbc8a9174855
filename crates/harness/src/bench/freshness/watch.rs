//! What the freshness bench watches after each probe: its complaints in
//! ClickHouse, its tier in the offenders API, its entries in the feed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ricochet_storage::ClickHouseConfig;
use serde_json::Value;

use super::{ESP, PROBE_COMPLAINTS};

const POLL: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(30);

/// Milliseconds from `t0` until every probe complaint is in ClickHouse.
pub(super) async fn wait_loaded(
    ch: &ClickHouseConfig,
    sender: &str,
    t0: Instant,
) -> Result<Option<f64>> {
    let client = ch.client();
    while t0.elapsed() < GIVE_UP {
        let n: u64 = client
            .query("SELECT uniqExact(jti) FROM complaints WHERE esp = ? AND sender = ?")
            .bind(ESP)
            .bind(sender)
            .fetch_one()
            .await?;
        if n as usize >= PROBE_COMPLAINTS {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}

/// Reads the ESP's complaint feed as it grows (as an ESP would, with a
/// cursor) and counts entries per sender.
pub(super) struct FeedFollower {
    per_sender: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedFollower {
    pub(super) fn start(http: reqwest::Client, api: String, bearer: String) -> FeedFollower {
        let per_sender: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
            Arc::default();
        let counts = per_sender.clone();
        let task = tokio::spawn(async move {
            let mut since = 0;
            loop {
                let url = format!("{api}/v1/complaints?since={since}&limit=1000");
                let page: Option<Value> =
                    match http.get(url).header("authorization", &bearer).send().await {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                let items = page
                    .as_ref()
                    .and_then(|p| p["items"].as_array().cloned())
                    .unwrap_or_default();
                {
                    let mut counts = counts.lock().expect("feed counts");
                    for i in &items {
                        let sender = i["sender"].as_str().unwrap_or("").to_string();
                        *counts.entry(sender).or_default() += 1;
                    }
                }
                since = page.and_then(|p| p["next"].as_u64()).unwrap_or(since);
                if items.len() < 1000 {
                    tokio::time::sleep(POLL).await;
                }
            }
        });
        FeedFollower { per_sender, task }
    }

    /// Milliseconds from `t0` until every probe complaint of `sender` was
    /// in the feed; `None` after [`GIVE_UP`].
    pub(super) async fn wait_fed(&self, sender: &str, t0: Instant) -> Option<f64> {
        while t0.elapsed() < GIVE_UP {
            let n = self
                .per_sender
                .lock()
                .expect("feed counts")
                .get(sender)
                .copied();
            if n.unwrap_or(0) >= PROBE_COMPLAINTS {
                return Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    pub(super) fn stop(self) {
        self.task.abort();
    }
}

/// Milliseconds from `t0` until the ESP's offenders page lists the sender.
pub(super) async fn wait_visible(
    http: &reqwest::Client,
    api: &str,
    bearer: &str,
    sender: &str,
    t0: Instant,
) -> Result<Option<f64>> {
    while t0.elapsed() < GIVE_UP {
        let page: Value = http
            .get(format!("{api}/v1/offenders?since=0&limit=1000"))
            .header("authorization", bearer)
            .send()
            .await?
            .json()
            .await?;
        let seen = page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["sender"] == sender));
        if seen {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}
