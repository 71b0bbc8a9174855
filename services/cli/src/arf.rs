//! `ricochet arf submit`: feed existing ARF feedback loops into Ricochet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use ricochet_harness::ingest::IngestClient;
use serde_json::Value;

use crate::complaint::Provider;

/// Largest report read (ingest refuses bodies over its own limit anyway).
const MAX_REPORT_BYTES: u64 = 1024 * 1024;

#[derive(Subcommand, Debug)]
pub enum ArfCommand {
    /// Submit RFC 5965 reports to ingest's /v1/arf as a provider: one file,
    /// or every message of a maildir (its cur/ and new/) or of a folder.
    /// Shows progress, then how many were accepted and why others were not.
    ///
    /// Exit code 0 if every report was accepted, 2 otherwise.
    Submit {
        #[command(flatten)]
        caller: Provider,
        /// A report file, a maildir, or a folder of report files.
        path: PathBuf,
    },
}

/// `ricochet arf ...`.
pub async fn run(cmd: ArfCommand) -> Result<ExitCode> {
    let ArfCommand::Submit { caller, path } = cmd;
    let key = crate::keys::load_private(&caller.key)?;
    let files = crate::mailbox::message_files(&path)?;
    let client = IngestClient::new(&caller.url, &caller.provider, key);
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} reports {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    // verdict -> reason -> count
    let mut tally: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut examples: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in &files {
        let size = std::fs::metadata(file)?.len();
        let (verdict, reason) = if size > MAX_REPORT_BYTES {
            ("not sent".to_string(), "larger than 1 MiB".to_string())
        } else {
            let body =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let answer = client.post_raw("/v1/arf", "message/rfc822", body).await?;
            let (status, v) = (answer.status, answer.body);
            let reason = |v: &Value| v["reason"].as_str().unwrap_or("").to_string();
            match status.as_u16() {
                200 => match v["results"][0]["verdict"].as_str() {
                    Some("accepted") => ("accepted".into(), String::new()),
                    _ => ("rejected".into(), reason(&v["results"][0])),
                },
                400 => ("not a report".into(), reason(&v)),
                s => anyhow::bail!("ingest answered {s} for {}: {v}", file.display()),
            }
        };
        examples
            .entry(format!("{verdict} {reason}"))
            .or_insert_with(|| file.clone());
        *tally.entry(verdict).or_default().entry(reason).or_default() += 1;
        let accepted = tally.get("accepted").map_or(0, |r| r.values().sum::<u64>());
        bar.set_message(format!("accepted {accepted}"));
        bar.inc(1);
    }
    bar.finish();
    println!("{} report(s) from {}", files.len(), path.display());
    let mut all_accepted = true;
    for (verdict, reasons) in &tally {
        for (reason, n) in reasons {
            all_accepted &= verdict == "accepted";
            let example = &examples[&format!("{verdict} {reason}")];
            if reason.is_empty() {
                println!("  {n:>6}  {verdict}");
            } else {
                println!(
                    "  {n:>6}  {verdict}: {reason}  (e.g. {})",
                    example.display()
                );
            }
        }
    }
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
