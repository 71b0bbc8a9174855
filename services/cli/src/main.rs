//! `ricochet`: the command line for ESPs, providers and operators.

mod arf;
mod audit;
mod complaint;
mod dashboards;
mod db;
mod kafka;
mod keys;
mod mailbox;
mod policy;
mod recipient_policy;
mod registry;
mod report;
mod reputation;
mod suppression;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ricochet: authenticated, deduplicated email complaint feedback loops.
///
/// ESPs sign one complaint token per message; mailbox providers submit it when
/// a user complains; Ricochet verifies, counts each token once, scores senders
/// and reports offenders back to their ESPs.
#[derive(Parser, Debug)]
#[command(name = "ricochet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate signing keys and print public key sets.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Add participants to the registry file, or check it.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Mint a complaint token (ESP side), verify one (provider side), or mint an API bearer.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Submit complaints to ingest (provider side).
    #[command(subcommand)]
    Complaint(complaint::ComplaintCommand),
    /// Report delivered counts to ingest (provider side).
    #[command(subcommand)]
    Delivery(complaint::DeliveryCommand),
    /// ClickHouse schema.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Kafka topics.
    #[command(subcommand)]
    Kafka(kafka::KafkaCommand),
    /// Reports for ESPs (offenders).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Reputation for mailbox providers: one key's standing, and the list
    /// of everything at throttle or above.
    #[command(subcommand)]
    Reputation(reputation::ReputationCommand),
    /// Audit the penalty log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Benchmarks against the running local stack.
    #[command(subcommand)]
    Bench(ricochet_harness::bench::BenchCommand),
    /// Feed RFC 5965 (ARF) reports from existing feedback loops into Ricochet.
    #[command(subcommand)]
    Arf(arf::ArfCommand),
    /// Run a simulated world (providers, ESPs, senders, an attacker) through
    /// the running services and compare the offender reports with the truth.
    Simulate(ricochet_harness::simulate::SimulateArgs),
    /// Check a scoring policy file.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check the Grafana dashboards against the real ClickHouse and Prometheus.
    #[command(subcommand)]
    Dashboards(dashboards::DashboardsCommand),
}

/// The registry file option shared by several commands.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArg {
    /// Participants registry file.
    #[arg(long, env = "RICOCHET_REGISTRY", default_value = "registry.toml")]
    registry: PathBuf,
}

fn main() -> ExitCode {
    ricochet_telemetry::init_logging();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Keys(c) => keys::run(c),
            Command::Registry(c) => registry::run(c),
            Command::Token(c) => token::run(c),
            Command::Complaint(c) => complaint::run(c).await,
            Command::Delivery(c) => complaint::run_delivery(c).await,
            Command::Db(c) => db::run(c).await,
            Command::Kafka(c) => kafka::run(c).await,
            Command::Report(c) => report::run(c).await,
            Command::Reputation(c) => reputation::run(c).await,
            Command::Audit(c) => audit::run(c).await,
            Command::Bench(c) => ricochet_harness::bench::run(c).await,
            Command::Dashboards(c) => dashboards::run(c).await,
            Command::Simulate(a) => ricochet_harness::simulate::run(a).await,
            Command::Arf(c) => arf::run(c).await,
            Command::Policy(c) => policy::run(c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
