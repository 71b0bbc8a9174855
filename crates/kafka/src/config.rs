//! Where the brokers are and how clients talk to them: a clap section every
//! service flattens into its own settings (`--kafka-*` flags,
//! `RICOCHET_KAFKA_*` variables), validated when the service starts.

use clap::{Args, Parser};
use rdkafka::ClientConfig;

/// Kafka connection settings shared by every producer, consumer and admin client.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated host:port.
    #[arg(
        long = "kafka-brokers",
        env = "RICOCHET_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Partitions per topic when Ricochet creates it.
    #[arg(
        long = "kafka-partitions",
        env = "RICOCHET_KAFKA_PARTITIONS",
        default_value_t = 6,
        value_parser = clap::value_parser!(i32).range(1..=10_000)
    )]
    pub partitions: i32,
    /// Replication factor when Ricochet creates a topic.
    #[arg(
        long = "kafka-replication",
        env = "RICOCHET_KAFKA_REPLICATION",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..=32)
    )]
    pub replication: i32,
    /// Idempotent producers (true or false). Turn off only for brokers that
    /// cannot serve them: tansu 0.6.0 refuses idempotent producers, even new
    /// ones, after it restarts (see README, "Local stack").
    #[arg(
        long = "kafka-idempotence",
        env = "RICOCHET_KAFKA_IDEMPOTENCE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub idempotence: bool,
}

/// The section alone, for tools that take no other flags.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct Only {
    #[command(flatten)]
    kafka: KafkaConfig,
}

impl KafkaConfig {
    /// Reads the settings from the environment alone (tools and tests);
    /// services flatten the section into their flags instead.
    pub fn from_env() -> Result<Self, clap::Error> {
        Only::try_parse_from(std::iter::empty::<String>()).map(|o| o.kafka)
    }

    /// A client configuration with the brokers set; callers add their role's settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("socket.timeout.ms", "10000");
        c
    }

    /// Settings for a durable producer: `acks=all`, idempotent unless turned off.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("enable.idempotence", self.idempotence.to_string())
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .set("linger.ms", "5");
        c
    }

    /// Settings for a consumer in `group` that commits offsets itself, after processing.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<KafkaConfig, clap::Error> {
        Only::try_parse_from(args).map(|o| o.kafka)
    }

    #[test]
    fn flags_parse_and_bad_values_are_refused() {
        let c = parse(&["--kafka-partitions", "3", "--kafka-idempotence", "false"]).unwrap();
        assert_eq!((c.partitions, c.idempotence), (3, false));
        for bad in [
            ["--kafka-partitions", "0"],
            ["--kafka-replication", "x"],
            ["--kafka-idempotence", "maybe"],
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.to_string().contains(bad[1]), "{err}");
        }
    }
}
