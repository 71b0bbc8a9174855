//! `ricochet complaint`: the provider side of the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_harness::ingest::IngestClient;
use ricochet_token::verify::unix_now;
use serde_json::{json, Value};

/// Who calls ingest, and where.
#[derive(clap::Args, Debug)]
pub struct Provider {
    /// Ingest base URL.
    #[arg(
        long,
        env = "RICOCHET_INGEST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The provider's private JWK (signs the bearer token).
    #[arg(long)]
    pub key: PathBuf,
    /// The provider's participant id.
    #[arg(long)]
    pub provider: String,
}

#[derive(Subcommand, Debug)]
pub enum DeliveryCommand {
    /// Report how many messages of one sender were delivered in one hour (the
    /// provider's full count for that hour; a later report replaces it).
    Submit {
        #[command(flatten)]
        caller: Provider,
        /// ESP id.
        #[arg(long)]
        esp: String,
        /// Sender id.
        #[arg(long)]
        sender: String,
        /// Campaign (the tokens' `cmp`), when reporting one campaign's share
        /// of the sender's mail: the denominator of the campaign level. The
        /// sender's count is the sum over its campaigns.
        #[arg(long)]
        campaign: Option<String>,
        /// From domain (the tokens' `dom`), when reporting one domain's share
        /// of the sender's mail: the denominator of the domain level.
        #[arg(long)]
        from_domain: Option<String>,
        /// Messages delivered.
        #[arg(long)]
        delivered: u64,
        /// Start of the hour, RFC 3339 (default: the current hour).
        #[arg(long)]
        hour: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ComplaintCommand {
    /// Submit complaints to ingest as a provider; prints each verdict.
    ///
    /// Either tokens (header values), or delivered messages with --message:
    /// the complaint button. From each message the Complaint-Token header is
    /// taken, and the address it was delivered to (Delivered-To, else
    /// X-Original-To, else --recipient) proves the recipient binding.
    ///
    /// Exit code 0 if every complaint was accepted, 2 if any was rejected
    /// or a message had no token.
    Submit {
        #[command(flatten)]
        caller: Provider,
        /// Complaint code: unwanted, misrepresented, policy-violation, phishing, unsubscribe-ignored, not-spam.
        #[arg(long, default_value = "unwanted")]
        code: String,
        /// Recipient address, to prove the recipient binding (optional).
        #[arg(long)]
        recipient: Option<String>,
        /// A delivered message: a file, a maildir (cur/ and new/) or a
        /// folder of message files; repeat for several.
        #[arg(long = "message", value_name = "FILE|MAILDIR")]
        messages: Vec<PathBuf>,
        /// Complaint tokens (Complaint-Token header values); - reads one per line from stdin.
        #[arg(required_unless_present = "messages")]
        tokens: Vec<String>,
    },
}

pub async fn run(cmd: ComplaintCommand) -> Result<ExitCode> {
    let ComplaintCommand::Submit {
        caller: Provider { url, key, provider },
        code,
        recipient,
        messages,
        tokens,
    } = cmd;
    let key = crate::keys::load_private(&key)?;
    let (mut found, skipped) = from_messages(&messages, recipient.as_deref())?;
    found.extend(
        from_tokens(tokens)?
            .into_iter()
            .map(|t| (t, recipient.clone())),
    );
    let now = unix_now();
    let reported_at =
        ricochet_harness::clock::rfc3339_ms(now * 1000).context("the clock is out of range")?;
    let items: Vec<Value> = found
        .iter()
        .map(|(t, r)| {
            let mut item = json!({"token": t, "code": code, "reported_at": reported_at});
            if let (Some(r), Some(jti)) = (r, jti_of(t)) {
                item["recipient_proof"] =
                    json!(ricochet_token::binding::recipient_binding(&jti, r));
            }
            item
        })
        .collect();
    anyhow::ensure!(!items.is_empty(), "no complaint tokens to submit");
    let client = IngestClient::new(&url, &provider, key);
    let mut all_accepted = skipped == 0;
    let (mut accepted, mut rejected) = (0, 0);
    for (n, chunk) in items.chunks(SUBMIT_BATCH).enumerate() {
        let body = client
            .post_json("/v1/complaints", &json!({ "complaints": chunk }))
            .await?
            .ok()?;
        all_accepted &= print_results(&body, n * SUBMIT_BATCH);
        accepted += body["accepted"].as_u64().unwrap_or(0);
        rejected += body["rejected"].as_u64().unwrap_or(0);
    }
    println!("accepted {accepted}, rejected {rejected}");
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Complaints per request (ingest takes up to 1,000).
const SUBMIT_BATCH: usize = 500;

/// Tokens given on the command line, or one per line on stdin for `-`.
fn from_tokens(tokens: Vec<String>) -> Result<Vec<String>> {
    if tokens != ["-"] {
        return Ok(tokens);
    }
    Ok(std::io::read_to_string(std::io::stdin())?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect())
}

/// A token and the recipient that proves its binding, if known.
type Found = (String, Option<String>);

/// (token, recipient) of every delivered message under `paths`, and how
/// many messages were skipped (each named) for not having exactly one token.
fn from_messages(paths: &[PathBuf], recipient: Option<&str>) -> Result<(Vec<Found>, usize)> {
    let (mut out, mut skipped) = (Vec::new(), 0);
    for path in paths {
        for file in crate::mailbox::message_files(path)? {
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let found = crate::mailbox::Delivered::read(&text);
            match found.token {
                Some(token) => out.push((token, found.recipient.or(recipient.map(String::from)))),
                None => {
                    println!(
                        "skipped {}: no single Complaint-Token header",
                        file.display()
                    );
                    skipped += 1;
                }
            }
        }
    }
    Ok((out, skipped))
}

/// Prints one line per result; whether all were accepted.
fn print_results(body: &Value, offset: usize) -> bool {
    let mut all_accepted = true;
    for r in body["results"].as_array().into_iter().flatten() {
        let verdict = r["verdict"].as_str().unwrap_or("?");
        all_accepted &= verdict == "accepted";
        let index = r["index"].as_u64().map_or(0, |i| i as usize + offset);
        println!(
            "{:<4} {:<9} {}",
            index,
            verdict,
            r["jti"].as_str().or(r["reason"].as_str()).unwrap_or("")
        );
    }
    all_accepted
}

pub async fn run_delivery(cmd: DeliveryCommand) -> Result<ExitCode> {
    let DeliveryCommand::Submit {
        caller: Provider { url, key, provider },
        esp,
        sender,
        campaign,
        from_domain,
        delivered,
        hour,
    } = cmd;
    let key = crate::keys::load_private(&key)?;
    let now = unix_now();
    let hour = match hour {
        Some(h) => h,
        None => ricochet_harness::clock::rfc3339_ms(now / 3600 * 3600 * 1000)
            .context("the clock is out of range")?,
    };
    let mut item = json!({"esp": esp, "sender": sender, "hour": hour, "delivered": delivered});
    if let Some(c) = &campaign {
        item["campaign"] = json!(c);
    }
    if let Some(d) = &from_domain {
        item["from_domain"] = json!(d);
    }
    let body = json!({ "deliveries": [item] });
    let client = IngestClient::new(&url, &provider, key);
    let results = client.post_json("/v1/deliveries", &body).await?.ok()?;
    let r = &results["results"][0];
    let verdict = r["verdict"].as_str().unwrap_or("?");
    match r["reason"].as_str() {
        Some(reason) => println!("{verdict} {reason}: {}", r["detail"].as_str().unwrap_or("")),
        None => {
            println!("{verdict}: {delivered} delivered for {esp}/{sender} in the hour from {hour}")
        }
    }
    Ok(if r["verdict"] == "accepted" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The `jti` of a token, read without verification (only to compute the proof).
fn jti_of(token: &str) -> Option<String> {
    use base64::Engine;
    let claims = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["jti"]
        .as_str()
        .map(String::from)
}
