use clap::Parser;
use ricochet_scoring::config::ScoringConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_telemetry::init_logging();
    ricochet_scoring::run(ScoringConfig::parse()).await
}
