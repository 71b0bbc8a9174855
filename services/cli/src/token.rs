//! `ricochet token`: mint (ESP side) and verify (provider side).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_registry::Registry;
use ricochet_token::send_log::SendLog;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, verify, JwkSet, Nature, TokenRequest, VerifyOptions};

use crate::RegistryArg;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a token for one message; prints the token (add it as the Complaint-Token header).
    Mint {
        /// The ESP's private JWK file.
        #[arg(long)]
        key: PathBuf,
        /// ESP id (iss).
        #[arg(long)]
        iss: String,
        /// Sender id: the ESP's customer that sends the message (sub).
        #[arg(long)]
        sub: String,
        /// Declared nature: transactional, account, personal, notification, newsletter, marketing.
        #[arg(long)]
        nature: String,
        /// Recipient address (only its domain and a one-way binding enter the token).
        #[arg(long)]
        recipient: String,
        /// Campaign id.
        #[arg(long)]
        campaign: Option<String>,
        /// The message's From domain (dom; RFC 5322.From, any case or a
        /// U-label: it is signed as its lower-case A-label).
        #[arg(long)]
        dom: Option<String>,
        /// Lifetime in days (at most 60).
        #[arg(long, default_value_t = 14)]
        lifetime_days: i64,
        /// Print the claims as JSON on stderr too.
        #[arg(long)]
        show_claims: bool,
        /// Append `jti,recipient` to this file (created if missing): the
        /// send log `ricochet report complaints --send-log` turns the
        /// complaint feed into a suppression list with.
        #[arg(long)]
        send_log: Option<PathBuf>,
    },
    /// Mint a short-lived API bearer token (providers: aud ricochet-ingest;
    /// ESPs: aud ricochet-esp-api); prints it, for curl or API test tools.
    Bearer {
        /// The participant's private JWK file.
        #[arg(long)]
        key: PathBuf,
        /// Participant id (iss).
        #[arg(long)]
        iss: String,
        /// Audience: ricochet-ingest or ricochet-esp-api.
        #[arg(long)]
        aud: String,
        /// Lifetime in seconds (the APIs accept at most 300).
        #[arg(long, default_value_t = 300)]
        lifetime: i64,
    },
    /// Verify a token; prints its claims, or the precise reason it is refused (exit code 2).
    Verify {
        /// The token, or - to read it from stdin.
        token: String,
        #[command(flatten)]
        registry: RegistryArg,
        /// Verify against this JWKS file instead of the registry (needs --issuer).
        #[arg(long, requires = "issuer")]
        jwks: Option<PathBuf>,
        /// The ESP id the --jwks file belongs to.
        #[arg(long)]
        issuer: Option<String>,
        /// Verify as of this Unix time instead of now.
        #[arg(long)]
        now: Option<i64>,
        /// Tolerated clock skew in seconds.
        #[arg(long, default_value_t = 60)]
        skew: i64,
    },
}

pub fn run(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Bearer {
            key,
            iss,
            aud,
            lifetime,
        } => {
            let key = crate::keys::load_private(&key)?;
            let token =
                ricochet_token::bearer::mint_bearer(&key, &iss, &aud, unix_now(), lifetime)?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Mint {
            key,
            iss,
            sub,
            nature,
            recipient,
            campaign,
            dom,
            lifetime_days,
            show_claims,
            send_log,
        } => {
            let key = crate::keys::load_private(&key)?;
            let nat: Nature = nature.parse()?;
            let mut req = TokenRequest::new(&iss, &sub, nat, &recipient, unix_now());
            req.cmp = campaign;
            req.dom = dom;
            req.lifetime_secs = lifetime_days * 86_400;
            let (token, claims) = mint(&key, &req)?;
            if let Some(path) = send_log {
                SendLog::open(&path)?.record(&claims.jti, &recipient)?;
            }
            if show_claims {
                eprintln!("{}", serde_json::to_string_pretty(&claims)?);
            }
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Verify {
            token,
            registry,
            jwks,
            issuer,
            now,
            skew,
        } => verify_token(token, &registry.registry, jwks.zip(issuer), now, skew),
    }
}

/// `ricochet token verify`: the claims, or the reason the token is refused
/// (exit code 2); `-` reads the token from standard input.
fn verify_token(
    token: String,
    registry: &std::path::Path,
    pinned: Option<(std::path::PathBuf, String)>,
    now: Option<i64>,
    skew: i64,
) -> Result<ExitCode> {
    let token = if token == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        token
    };
    let opts = VerifyOptions {
        now: now.unwrap_or_else(unix_now),
        clock_skew_secs: skew,
    };
    let result = match pinned {
        Some((path, iss)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let keys = JwkSet::from_json(&text)?.verifying_keys()?;
            verify(&token, &BTreeMap::from([(iss, keys)]), &opts)
        }
        None => verify(&token, &Registry::load(registry)?, &opts),
    };
    match result {
        Ok(claims) => {
            println!("{}", serde_json::to_string_pretty(&claims)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("refused: {}: {e}", e.reason());
            Ok(ExitCode::from(2))
        }
    }
}
