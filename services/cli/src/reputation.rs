//! `ricochet reputation`: what a mailbox provider's postmaster or scripts
//! read back from the provider API: one key's standing, and the list of
//! everything at `throttle` or above (or what changed in it since a
//! version). Every answer's signature is verified before it is printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use ricochet_harness::api::{ricochet_keys, signed_get};

/// The audience of provider API bearer tokens.
const AUDIENCE: &str = "ricochet-provider-api";

/// How to reach the provider API and who asks.
#[derive(Args, Debug)]
pub struct ProviderApiArgs {
    /// Provider API base URL (served by the scoring service).
    #[arg(
        long,
        env = "RICOCHET_PROVIDER_API_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    url: String,
    /// The provider's private JWK (signs the bearer token).
    #[arg(long)]
    key: PathBuf,
    /// The provider's participant id.
    #[arg(long)]
    provider: String,
    /// Ricochet's JWKS file to verify answers against; without it the JWKS
    /// is fetched from the service itself (pin it for real use).
    #[arg(long)]
    ricochet_jwks: Option<PathBuf>,
    /// Print the signed JSON as it came instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ReputationCommand {
    /// One ESP's, sender's, campaign's or From domain's standing: tier,
    /// since when, and per window the rate, its Wilson bounds and the
    /// complaints your provider reported. Give --esp alone for the ESP as a
    /// whole, --esp with --sender or --campaign, or --domain alone.
    Lookup {
        #[command(flatten)]
        api: ProviderApiArgs,
        #[command(flatten)]
        what: Subject,
    },
    /// Everything at throttle or above; with --since, only what changed
    /// after that version (the summary ends with the version to pass next).
    List {
        #[command(flatten)]
        api: ProviderApiArgs,
        /// The version of the list you hold.
        #[arg(long)]
        since: Option<i64>,
    },
}

/// The key a lookup is about.
#[derive(Args, Debug)]
pub struct Subject {
    /// The ESP (participant id).
    #[arg(long, required_unless_present = "domain")]
    esp: Option<String>,
    /// A sender id of the ESP (token `sid`).
    #[arg(long, requires = "esp", conflicts_with_all = ["campaign", "domain"])]
    sender: Option<String>,
    /// A campaign id of the ESP (token `cmp`).
    #[arg(long, requires = "esp", conflicts_with = "domain")]
    campaign: Option<String>,
    /// A From domain (token `dom`), across every ESP.
    #[arg(long, conflicts_with = "esp")]
    domain: Option<String>,
}

impl Subject {
    /// The path segments after `/v1/reputation/`.
    fn segments(self) -> Result<Vec<String>> {
        let nonempty = |v: String, what: &str| {
            if v.is_empty() {
                bail!("{what} is empty");
            }
            Ok(v)
        };
        if let Some(domain) = self.domain {
            return Ok(vec!["domains".into(), nonempty(domain, "--domain")?]);
        }
        let esp = nonempty(self.esp.context("--esp or --domain is required")?, "--esp")?;
        let mut out = vec!["esps".into(), esp];
        if let Some(sender) = self.sender {
            out.extend(["senders".into(), nonempty(sender, "--sender")?]);
        } else if let Some(campaign) = self.campaign {
            out.extend(["campaigns".into(), nonempty(campaign, "--campaign")?]);
        }
        Ok(out)
    }
}

pub async fn run(cmd: ReputationCommand) -> Result<ExitCode> {
    let (api, segments, since) = match cmd {
        ReputationCommand::Lookup { api, what } => (api, what.segments()?, None),
        ReputationCommand::List { api, since } => (api, vec!["listed".to_string()], since),
    };
    let base = api.url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(base).with_context(|| format!("--url {base}"))?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url {base} cannot be a base"))?
        .pop_if_empty()
        .extend(["v1", "reputation"])
        .extend(&segments);
    if let Some(v) = since {
        url.query_pairs_mut().append_pair("since", &v.to_string());
    }
    let http = reqwest::Client::new();
    let keys = ricochet_keys(&http, base, api.ricochet_jwks.as_deref()).await?;
    let key = crate::keys::load_private(&api.key)?;
    let caller = (&key, api.provider.as_str(), AUDIENCE);
    let body = signed_get(&http, url.as_str(), caller, &keys).await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else if body.get("columns").is_some() {
        print_list(&body);
    } else {
        print_standing(&body);
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix ms as RFC 3339, or the number if it is out of range.
fn when(ms: &Value) -> String {
    let Some(ms) = ms.as_i64() else {
        return "-".into();
    };
    ricochet_harness::clock::rfc3339_ms(ms).unwrap_or_else(|| ms.to_string())
}

fn print_standing(b: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let what = match s(&b["level"]).as_str() {
        "esp" => format!("ESP {}", s(&b["esp"])),
        "domain" => format!("domain {}", s(&b["key"])),
        level => format!("{level} {} of {}", s(&b["key"]), s(&b["esp"])),
    };
    println!(
        "{what}: {} since {} (signature verified; as seen by {})",
        s(&b["tier"]),
        when(&b["tier_since_ms"]),
        s(&b["provider"])
    );
    println!(
        "{:<7} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9}  tier",
        "window", "delivered", "complaints", "yours", "rate", "lower", "upper"
    );
    let mut windows = b["windows"].as_array().cloned().unwrap_or_default();
    windows.sort_by_key(|w| window_hours(w["window"].as_str().unwrap_or("")));
    for w in &windows {
        let pct = |v: &Value| format!("{:.3}%", v.as_f64().unwrap_or(0.0) * 100.0);
        println!(
            "{:<7} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9}  {}",
            s(&w["window"]),
            w["delivered"].to_string(),
            w["complaints"].to_string(),
            w["your_complaints"].to_string(),
            pct(&w["rate"]),
            pct(&w["wilson_lower"]),
            pct(&w["wilson_upper"]),
            s(&w["tier"])
        );
    }
    for j in b["judged_by"].as_array().into_iter().flatten() {
        println!(
            "judged by {} {:?}: {}",
            s(&j["level"]),
            s(&j["key"]),
            s(&j["tier"])
        );
    }
    println!("{}", s(&b["explanation"]));
}

/// Hours of a window name (`24h`, `7d`), for ordering; unknown names last.
fn window_hours(name: &str) -> u64 {
    let (n, unit) = name.split_at(name.len().saturating_sub(1));
    let n: u64 = n.parse().unwrap_or(u64::MAX / 24);
    if unit == "d" {
        n * 24
    } else {
        n
    }
}

fn print_list(b: &Value) {
    let listed = b["listed"].as_array().cloned().unwrap_or_default();
    let removed = b["removed"].as_array().cloned().unwrap_or_default();
    if b["full"] == true {
        println!(
            "{} key(s) at throttle or above (signature verified)",
            listed.len()
        );
    } else {
        println!(
            "changes after version {}: {} listed or changed, {} removed (signature verified)",
            b["since"],
            listed.len(),
            removed.len()
        );
    }
    println!(
        "{:<9} {:<24} {:<28} {:<9} since",
        "level", "esp", "key", "tier"
    );
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    for r in &listed {
        println!(
            "{:<9} {:<24} {:<28} {:<9} {}",
            s(&r[0]),
            s(&r[1]),
            s(&r[2]),
            s(&r[3]),
            when(&r[4])
        );
    }
    for r in &removed {
        println!("{:<9} {:<24} {:<28} removed", s(&r[0]), s(&r[1]), s(&r[2]));
    }
    println!(
        "version: {} (pass --since {} next time)",
        b["version"], b["version"]
    );
}
