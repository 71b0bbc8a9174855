//! Milter settings: command-line flags, each with an environment variable
//! and a default, validated at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

/// Ricochet milter: complaint tokens where mail flows.
///
/// `sign` runs beside an ESP's MTA: every message gets one complaint token
/// for its one recipient. `check` runs beside a mailbox provider's MTA:
/// every incoming token is verified and the result is written into the
/// message; recipient policies are enforced; delivered messages are counted
/// and reported to ingest. Postfix: `smtpd_milters = inet:HOST:PORT`.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "ricochet-milter", version)]
pub struct Cli {
    /// Which side of the mail flow this milter serves.
    #[command(subcommand)]
    pub mode: Mode,
}

/// The two modes.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Mode {
    /// ESP side: mint and add a Complaint-Token to every outgoing message.
    Sign(SignConfig),
    /// Provider side: verify incoming tokens, enforce recipient policies,
    /// count deliveries.
    Check(CheckConfig),
}

/// Settings both modes share: where to listen.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Milter address (Postfix: `smtpd_milters = inet:127.0.0.1:8891`).
    #[arg(long, env = "RICOCHET_MILTER_LISTEN", default_value = "127.0.0.1:8891")]
    pub listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "RICOCHET_MILTER_OPS_LISTEN",
        default_value = "127.0.0.1:9467"
    )]
    pub ops_listen: SocketAddr,
    /// Most MTA connections served at once; more wait in the listen queue.
    #[arg(
        long,
        env = "RICOCHET_MILTER_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    pub max_connections: u64,
    /// Seconds the MTA may stay silent on a connection before it is closed
    /// (Postfix's own milter timeouts are shorter).
    #[arg(
        long,
        env = "RICOCHET_MILTER_IDLE_TIMEOUT_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub idle_timeout_secs: u64,
}

impl ListenArgs {
    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// What the sign milter does with a message it cannot sign (no declared
/// nature, no sender id, or a nature the recipient's domain refuses).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsignedAction {
    /// Deliver it without a token (the default: never break email).
    Pass,
    /// Refuse it with `550 5.7.1` and the reason.
    Reject,
    /// Ask the client to retry later with `451 4.7.1`.
    Tempfail,
}

/// `ricochet-milter sign`.
#[derive(clap::Args, Debug, Clone)]
pub struct SignConfig {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// The ESP's participant id (the tokens' `iss`).
    #[arg(long, env = "RICOCHET_ESP")]
    pub esp: String,
    /// The ESP's private JWK (signs the tokens; the only thing signing needs).
    #[arg(long, env = "RICOCHET_MILTER_KEY")]
    pub key: PathBuf,
    /// Send log: one `jti,recipient` line per signed message, appended (what
    /// `ricochet report complaints --send-log` turns into a suppression list).
    #[arg(long, env = "RICOCHET_SEND_LOG")]
    pub send_log: PathBuf,
    /// Sender map (TOML): sender ids by SASL login and by envelope sender;
    /// see the README. Checked for changes every 2 s.
    #[arg(long, env = "RICOCHET_MILTER_SENDERS")]
    pub senders: Option<PathBuf>,
    /// Take the sender id from the `Ricochet-Sender:` header when the
    /// sender map has none. Only for an MTA whose every client is the ESP's
    /// own platform: a customer that sets the header picks its identity.
    #[arg(long, env = "RICOCHET_MILTER_TRUST_SENDER_HEADER")]
    pub trust_sender_header: bool,
    /// What to do with a message that cannot be signed.
    #[arg(
        long,
        env = "RICOCHET_MILTER_UNSIGNED",
        value_enum,
        default_value = "pass"
    )]
    pub unsigned: UnsignedAction,
    /// Recipient policy directory (`DOMAIN.json` files, as served at
    /// /.well-known/ricochet-policy/DOMAIN): mail whose nature the
    /// recipient's domain refuses is not signed (see --unsigned).
    #[arg(long, env = "RICOCHET_POLICY_DIR")]
    pub policies: Option<PathBuf>,
    /// Token lifetime in days (1 to 60).
    #[arg(
        long,
        env = "RICOCHET_TOKEN_LIFETIME_DAYS",
        default_value_t = 14,
        value_parser = clap::value_parser!(u64).range(1..=60)
    )]
    pub lifetime_days: u64,
}

/// What the check milter does with a message the recipient's policy refuses.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Deliver it with `Complaint-Token-Policy: refused; …` added.
    Header,
    /// Deliver it into the MTA's hold queue (Postfix: `postqueue -p` shows it).
    Quarantine,
    /// Refuse it with `550 5.7.1` and the reason.
    Reject,
}

/// `ricochet-milter check`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckConfig {
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Participants registry file (the ESPs' public keys); checked for
    /// changes every 2 s.
    #[arg(long, env = "RICOCHET_REGISTRY", default_value = "registry.toml")]
    pub registry: PathBuf,
    /// Tolerated clock skew for token times, seconds.
    #[arg(long, env = "RICOCHET_CLOCK_SKEW_SECS", default_value_t = 60)]
    pub clock_skew_secs: i64,
    /// Recipient policy directory (`DOMAIN.json`); checked for changes every 2 s.
    #[arg(long, env = "RICOCHET_POLICY_DIR")]
    pub policies: Option<PathBuf>,
    /// The action for mail a policy refuses when the policy names none.
    #[arg(
        long,
        env = "RICOCHET_MILTER_POLICY_ACTION",
        value_enum,
        default_value = "header"
    )]
    pub policy_action: PolicyAction,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Where and how the check milter reports delivered counts.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Ingest base URL for `/v1/deliveries`; without it, counts are kept
    /// in the counts file but not reported.
    #[arg(long, env = "RICOCHET_INGEST_URL")]
    pub ingest_url: Option<String>,
    /// The provider's participant id.
    #[arg(long, env = "RICOCHET_PROVIDER", requires = "ingest_url")]
    pub provider: Option<String>,
    /// The provider's private JWK (signs the bearer tokens).
    #[arg(long, env = "RICOCHET_PROVIDER_KEY", requires = "ingest_url")]
    pub provider_key: Option<PathBuf>,
    /// Counts file: the hour's counts survive a restart (a report replaces
    /// the hour's count, so a count that restarted at zero would shrink it).
    #[arg(
        long,
        env = "RICOCHET_MILTER_COUNTS",
        default_value = "milter-counts.json"
    )]
    pub counts_file: PathBuf,
    /// Seconds between reports of the counts that changed.
    #[arg(
        long,
        env = "RICOCHET_MILTER_REPORT_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub report_secs: u64,
}
