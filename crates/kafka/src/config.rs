//! Where the brokers are and how clients talk to them.

use rdkafka::ClientConfig;
use ricochet_telemetry::{env_or, env_parse, ConfigError};

/// Kafka connection settings shared by every producer, consumer and admin client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers (`RICOCHET_KAFKA_BROKERS`, default `127.0.0.1:9092`).
    pub brokers: String,
    /// Partitions per topic at creation (`RICOCHET_KAFKA_PARTITIONS`, default 6).
    pub partitions: i32,
    /// Replication factor at creation (`RICOCHET_KAFKA_REPLICATION`, default 1).
    pub replication: i32,
    /// Idempotent producers (`RICOCHET_KAFKA_IDEMPOTENCE`, default true). Turn off
    /// only for brokers that cannot serve them: tansu 0.6.0 refuses idempotent
    /// producers, even new ones, after it restarts (see README, "Local stack").
    pub idempotence: bool,
}

impl KafkaConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(KafkaConfig {
            brokers: env_or("RICOCHET_KAFKA_BROKERS", "127.0.0.1:9092"),
            partitions: env_parse("RICOCHET_KAFKA_PARTITIONS", 6)?,
            replication: env_parse("RICOCHET_KAFKA_REPLICATION", 1)?,
            idempotence: env_parse("RICOCHET_KAFKA_IDEMPOTENCE", true)?,
        })
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
