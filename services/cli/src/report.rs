//! `ricochet report`: what an ESP runs to see its offenders.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::detached::verify_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{JwkSet, SigningKey, VerifyingKey};
use serde_json::Value;
use std::collections::BTreeMap;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// The verified JSON response.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Fetch the calling ESP's offenders (tier changes since a cursor) from the
    /// ESP API, verify Ricochet's signature on the response, and print them.
    Offenders {
        /// ESP API base URL.
        #[arg(
            long,
            env = "RICOCHET_ESP_API_URL",
            default_value = "http://127.0.0.1:8090"
        )]
        url: String,
        /// The ESP's private JWK (signs the bearer token).
        #[arg(long)]
        key: PathBuf,
        /// The ESP's participant id.
        #[arg(long)]
        esp: String,
        /// Cursor: the last `seq` already processed.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Ricochet's JWKS file to verify against; without it the JWKS is fetched
        /// from the API itself (pin it for real use).
        #[arg(long)]
        ricochet_jwks: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub async fn run(cmd: ReportCommand) -> Result<ExitCode> {
    let ReportCommand::Offenders {
        url,
        key,
        esp,
        since,
        ricochet_jwks,
        format,
    } = cmd;
    let url = url.trim_end_matches('/').to_string();
    let key = crate::keys::load_private(&key)?;
    let http = reqwest::Client::new();
    let jwks_text = match ricochet_jwks {
        Some(p) => {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?
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
    let ricochet_keys = JwkSet::from_json(&jwks_text)?.verifying_keys()?;
    let (items, cursor) = fetch_offenders(&http, &url, &key, &esp, since, &ricochet_keys).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"esp": esp, "next": cursor, "items": items})
            )?
        ),
        Format::Csv => {
            println!("seq,level,key,from_tier,to_tier,rule,at_ms,rate_24h,lower_24h,delivered_24h");
            for i in &items {
                let w = &i["evidence"]["windows"]["24h"];
                println!(
                    "{},{},{},{},{},{},{},{},{},{}",
                    i["seq"],
                    i["level"].as_str().unwrap_or("sender"),
                    i["key"].as_str().unwrap_or(""),
                    i["from_tier"].as_str().unwrap_or(""),
                    i["to_tier"].as_str().unwrap_or(""),
                    i["rule"].as_str().unwrap_or(""),
                    i["at_ms"],
                    w["rate"],
                    w["lower"],
                    w["delivered"]
                );
            }
        }
        Format::Table => print_table(&esp, since, &items, cursor),
    }
    Ok(ExitCode::SUCCESS)
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
    let mut items: Vec<Value> = vec![];
    let mut cursor = since;
    loop {
        let bearer = mint_bearer(key, esp, "ricochet-esp-api", unix_now(), 120)?;
        let resp = http
            .get(format!("{url}/v1/offenders?since={cursor}&limit=1000"))
            .bearer_auth(bearer)
            .send()
            .await
            .with_context(|| format!("GET {url}/v1/offenders"))?;
        let status = resp.status();
        let signature = resp
            .headers()
            .get("ricochet-signature")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "the ESP API answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let signature = signature.context("the response carries no Ricochet-Signature")?;
        verify_detached(&signature, &body, ricochet_keys)
            .context("Ricochet's signature on the response does not verify")?;
        let page: Value = serde_json::from_slice(&body)?;
        let page_items = page["items"].as_array().cloned().unwrap_or_default();
        let next = page["next"].as_u64().unwrap_or(cursor);
        let done = page_items.is_empty() || next == cursor;
        items.extend(page_items);
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
