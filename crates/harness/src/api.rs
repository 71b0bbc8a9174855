//! A client of Ricochet's signed APIs (the ESP API and the provider API):
//! Ricochet's response keys, GETs whose signature is verified before the
//! body is read, the paged feeds, and the offender table as an ESP reads it.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::detached::verify_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{JwkSet, SigningKey, VerifyingKey};
use serde_json::Value;

/// Ricochet's response-signing keys: from the pinned JWKS file `pinned`, or
/// fetched from the service at `url` itself.
pub async fn ricochet_keys(
    http: &reqwest::Client,
    url: &str,
    pinned: Option<&std::path::Path>,
) -> Result<BTreeMap<String, VerifyingKey>> {
    let jwks_text = match pinned {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => {
            http.get(format!("{url}/.well-known/jwks.json"))
                .send()
                .await
                .context("fetching Ricochet's JWKS")?
                .text()
                .await?
        }
    };
    Ok(JwkSet::from_json(&jwks_text)?.verifying_keys()?)
}

/// Who signs a request's bearer token: the key, the participant id it is
/// registered to, and the API's audience.
pub type Caller<'a> = (&'a SigningKey, &'a str, &'a str);

/// GETs `url` with a bearer signed as `caller`, and returns the JSON body
/// once Ricochet's signature on it verifies; an error status is an error.
pub async fn signed_get(
    http: &reqwest::Client,
    url: &str,
    (key, iss, aud): Caller<'_>,
    ricochet_keys: &BTreeMap<String, VerifyingKey>,
) -> Result<Value> {
    let bearer = mint_bearer(key, iss, aud, unix_now(), 120)?;
    let resp = http
        .get(url)
        .bearer_auth(bearer)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let signature = resp
        .headers()
        .get("ricochet-signature")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let signature = signature.context("the response carries no Ricochet-Signature")?;
    verify_detached(&signature, &body, ricochet_keys)
        .context("Ricochet's signature on the response does not verify")?;
    Ok(serde_json::from_slice(&body)?)
}

/// Fetches every offender page after `since` for `esp`, verifying Ricochet's
/// signature on each; returns the items and the new cursor.
pub async fn fetch_offenders(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    esp: &str,
    since: u64,
    ricochet_keys: &BTreeMap<String, VerifyingKey>,
) -> Result<(Vec<Value>, u64)> {
    let route = (url, "/v1/offenders");
    fetch_pages(http, route, key, esp, since, ricochet_keys, |_| {}).await
}

/// Fetches every page of `(base url, route)` after `since` for `esp`,
/// verifying Ricochet's signature on each and calling `progress` with the
/// items so far; returns the items and the new cursor.
pub async fn fetch_pages(
    http: &reqwest::Client,
    (url, route): (&str, &str),
    key: &SigningKey,
    esp: &str,
    since: u64,
    ricochet_keys: &BTreeMap<String, VerifyingKey>,
    mut progress: impl FnMut(usize),
) -> Result<(Vec<Value>, u64)> {
    let mut items: Vec<Value> = vec![];
    let mut cursor = since;
    loop {
        let page_url = format!("{url}{route}?since={cursor}&limit=1000");
        let caller = (key, esp, "ricochet-esp-api");
        let page = signed_get(http, &page_url, caller, ricochet_keys).await?;
        let page_items = page["items"].as_array().cloned().unwrap_or_default();
        let next = page["next"].as_u64().unwrap_or(cursor);
        let done = page_items.is_empty() || next == cursor;
        items.extend(page_items);
        progress(items.len());
        cursor = next;
        if done {
            break;
        }
    }
    Ok((items, cursor))
}

/// Prints offender items as the table an ESP reads.
pub fn print_table(esp: &str, since: u64, items: &[Value], cursor: u64) {
    println!(
        "Offender report for {esp} (signature verified; {} change(s) since seq {since})",
        items.len()
    );
    println!(
        "{:>5}  {:<9} {:<20} {:<9} -> {:<9} {:<22} {:>10} {:>9} {:>9}",
        "seq", "level", "key", "from", "to", "rule", "delivered", "rate", "lower"
    );
    for i in items {
        let w = &i["evidence"]["windows"]["24h"];
        let key = match i["key"].as_str() {
            Some("") => "(the whole ESP)",
            Some(k) => k,
            None => "",
        };
        println!(
            "{:>5}  {:<9} {:<20} {:<9} -> {:<9} {:<22} {:>10} {:>8.3}% {:>8.3}%",
            i["seq"].as_u64().unwrap_or(0),
            i["level"].as_str().unwrap_or("sender"),
            key,
            i["from_tier"].as_str().unwrap_or(""),
            i["to_tier"].as_str().unwrap_or(""),
            i["rule"].as_str().unwrap_or(""),
            w["delivered"].as_u64().unwrap_or(0),
            w["rate"].as_f64().unwrap_or(0.0) * 100.0,
            w["lower"].as_f64().unwrap_or(0.0) * 100.0,
        );
    }
    println!("next cursor: {cursor}");
}
