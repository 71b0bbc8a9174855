//! `ricochet report`: what an ESP runs to see its offenders, and to turn
//! its complaint feed into a suppression list.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ricochet_token::send_log::read_send_log;
use ricochet_token::{SigningKey, VerifyingKey};

use crate::suppression::{csv_field, suppress};
use ricochet_harness::api::{fetch_offenders, fetch_pages, print_table, ricochet_keys};
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

/// Where and as whom an ESP reads the ESP API.
#[derive(Args, Debug)]
pub struct EspApiArgs {
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
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Fetch the calling ESP's offenders (tier changes since a cursor) from the
    /// ESP API, verify Ricochet's signature on the response, and print them.
    Offenders {
        #[command(flatten)]
        api: EspApiArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Fetch the calling ESP's complaint feed since a cursor (signature
    /// verified) and turn it into a suppression list with the send log
    /// `ricochet token mint --send-log` wrote: a CSV of recipient, sender,
    /// campaign, code, reported_at for every complaint whose recipient
    /// hashes to the token's `rcb`. A recipient that does not is reported on
    /// stderr, not suppressed; `not-spam` reports suppress nobody. The
    /// summary (stderr) ends with the cursor for the next run.
    Complaints {
        #[command(flatten)]
        api: EspApiArgs,
        /// The send log (`jti,recipient` lines).
        #[arg(long)]
        send_log: PathBuf,
        /// Write the CSV here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A verified connection to the ESP API.
struct Api {
    http: reqwest::Client,
    url: String,
    key: SigningKey,
    ricochet_keys: BTreeMap<String, VerifyingKey>,
}

impl Api {
    /// Loads the ESP's key and Ricochet's JWKS (pinned file or fetched).
    async fn connect(args: &EspApiArgs) -> Result<Api> {
        let url = args.url.trim_end_matches('/').to_string();
        let key = crate::keys::load_private(&args.key)?;
        let http = reqwest::Client::new();
        let ricochet_keys = ricochet_keys(&http, &url, args.ricochet_jwks.as_deref()).await?;
        Ok(Api {
            http,
            url,
            key,
            ricochet_keys,
        })
    }
}

pub async fn run(cmd: ReportCommand) -> Result<ExitCode> {
    match cmd {
        ReportCommand::Offenders { api, format } => offenders(api, format).await,
        ReportCommand::Complaints { api, send_log, out } => {
            complaints(api, &send_log, out.as_deref()).await
        }
    }
}

async fn offenders(args: EspApiArgs, format: Format) -> Result<ExitCode> {
    let api = Api::connect(&args).await?;
    let (esp, since) = (&args.esp, args.since);
    let (items, cursor) = fetch_offenders(
        &api.http,
        &api.url,
        &api.key,
        esp,
        since,
        &api.ricochet_keys,
    )
    .await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"esp": esp, "next": cursor, "items": items})
            )?
        ),
        Format::Csv => print_csv(&items),
        Format::Table => print_table(esp, since, &items, cursor),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_csv(items: &[Value]) {
    println!("seq,level,key,from_tier,to_tier,rule,at_ms,rate_24h,lower_24h,delivered_24h");
    for i in items {
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

async fn complaints(
    args: EspApiArgs,
    send_log: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let log = read_send_log(send_log)?;
    eprintln!("send log: {} tokens", log.len());
    let api = Api::connect(&args).await?;
    let mut pages = 0;
    let (items, cursor) = fetch_pages(
        &api.http,
        (&api.url, "/v1/complaints"),
        &api.key,
        &args.esp,
        args.since,
        &api.ricochet_keys,
        |n| {
            pages += 1;
            if pages % 10 == 0 {
                eprintln!("fetched {n} feed entries ...");
            }
        },
    )
    .await?;
    let outcome = suppress(&items, &log);
    let mut csv = String::from("recipient,sender,campaign,code,reported_at\n");
    for s in &outcome.suppressed {
        let at = ricochet_harness::clock::rfc3339_ms(s.reported_at_ms)
            .with_context(|| format!("reported_at {} is out of range", s.reported_at_ms))?;
        let fields = [&s.recipient, &s.sender, &s.campaign, &s.code, &at];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    match out {
        Some(path) => {
            std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{csv}"),
    }
    for (jti, recipient) in &outcome.mismatched {
        eprintln!("not suppressed: {jti}: the send log says {recipient}, which does not hash to the token's rcb");
    }
    eprintln!(
        "{} feed entries after seq {} (signature verified): {} suppressed, {} not-spam, {} not in the send log, {} rcb mismatches not suppressed, {} without rcb suppressed on the log's word; next cursor: {cursor}",
        items.len(),
        args.since,
        outcome.suppressed.len(),
        outcome.positive,
        outcome.unknown,
        outcome.mismatched.len(),
        outcome.unchecked,
    );
    Ok(ExitCode::SUCCESS)
}
