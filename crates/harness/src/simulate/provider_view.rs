//! What a mailbox provider receives at the end of the simulation: the list
//! of everything at `throttle` or above, read like an MTA reads it (signed
//! `GET /v1/reputation/listed`), checked against the tier changes the ESPs
//! received: the same keys at the same tiers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use ricochet_token::VerifyingKey;
use serde_json::Value;

use super::{Participants, ESPS, PROVIDERS};
use crate::api::{fetch_offenders, signed_get};

/// (level, ESP or empty for a domain, key, tier).
type Listed = BTreeSet<(String, String, String, String)>;

const LISTED_TIERS: [&str; 3] = ["throttle", "suspend", "exclude"];

/// The provider list and whether it matches the ESPs' offender reports.
pub struct ProviderView {
    /// The list as the first provider read it.
    pub listed: Listed,
    /// Whether it holds exactly the keys the ESPs were told are at
    /// throttle or above.
    pub matches: bool,
}

/// Reads the list as the first provider, and every ESP's offender report,
/// until they agree or `patience` passes (a run may land between reads).
pub async fn read(
    http: &reqwest::Client,
    api: &str,
    p: &Participants,
    keys: &BTreeMap<String, VerifyingKey>,
    patience: Duration,
) -> Result<ProviderView> {
    let deadline = Instant::now() + patience;
    let caller = (&*p.providers[0], PROVIDERS[0].id, "ricochet-provider-api");
    loop {
        let url = format!("{api}/v1/reputation/listed");
        let body = signed_get(http, &url, caller, keys).await?;
        let listed = rows(&body);
        let told = told_to_esps(http, api, p, keys).await?;
        let matches = listed == told;
        if matches || Instant::now() >= deadline {
            return Ok(ProviderView { listed, matches });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The listed rows of the simulated world (the walk-through before it
/// may have listed its own ESP).
fn rows(body: &Value) -> Listed {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    body["listed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (s(&r[0]), s(&r[1]), s(&r[2]), s(&r[3])))
        .filter(|(level, esp, _, _)| level == "domain" || ESPS.contains(&esp.as_str()))
        .collect()
}

/// The keys at throttle or above by the last change each ESP received (a
/// domain's changes reach every ESP that carries it).
async fn told_to_esps(
    http: &reqwest::Client,
    api: &str,
    p: &Participants,
    keys: &BTreeMap<String, VerifyingKey>,
) -> Result<Listed> {
    let mut last: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (i, esp) in ESPS.iter().enumerate() {
        let (items, _) = fetch_offenders(http, api, &p.esps[i], esp, 0, keys).await?;
        for item in items {
            let s = |k: &str| item[k].as_str().unwrap_or("").to_string();
            let level = s("level");
            let esp = if level == "domain" {
                String::new()
            } else {
                s("esp")
            };
            last.insert((level, esp, s("key")), s("to_tier"));
        }
    }
    Ok(last
        .into_iter()
        .filter(|(_, tier)| LISTED_TIERS.contains(&tier.as_str()))
        .map(|((level, esp, key), tier)| (level, esp, key, tier))
        .collect())
}

/// Prints what the provider's MTA would act on.
pub fn print(view: &ProviderView) {
    let mut per: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (level, _, _, tier) in &view.listed {
        *per.entry((level.as_str(), tier.as_str())).or_default() += 1;
    }
    let counts: Vec<String> = per
        .iter()
        .map(|((l, t), n)| format!("{l} {t} {n}"))
        .collect();
    println!(
        "{} received a list of {} key(s) at throttle or above to defer or refuse at SMTP time ({}); polling it with ?since=<version> returns only changes",
        PROVIDERS[0].id,
        view.listed.len(),
        counts.join(", ")
    );
    for (level, esp, key, tier) in view.listed.iter().filter(|r| r.0 != "sender").take(6) {
        println!("  {level:<9} {esp:<20} {key:<24} {tier}");
    }
}
