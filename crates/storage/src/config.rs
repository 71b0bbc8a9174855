//! Where ClickHouse is and which database Ricochet owns.

use ricochet_telemetry::env_or;

/// Connection settings for ClickHouse's HTTP interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// Base URL (`RICOCHET_CLICKHOUSE_URL`, default `http://127.0.0.1:8123`).
    pub url: String,
    /// Database holding Ricochet's tables (`RICOCHET_CLICKHOUSE_DATABASE`, default `ricochet`).
    pub database: String,
    /// User (`RICOCHET_CLICKHOUSE_USER`, default `default`).
    pub user: String,
    /// Password (`RICOCHET_CLICKHOUSE_PASSWORD`, default empty). Never logged.
    pub password: String,
    /// LZ4 on the wire (`RICOCHET_CLICKHOUSE_COMPRESSION`: `lz4`, the
    /// default, or `none`). Across a network it saves bandwidth; on
    /// loopback it only costs CPU on both ends.
    pub compression: bool,
}

impl ClickHouseConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        ClickHouseConfig {
            url: env_or("RICOCHET_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            database: env_or("RICOCHET_CLICKHOUSE_DATABASE", "ricochet"),
            user: env_or("RICOCHET_CLICKHOUSE_USER", "default"),
            password: env_or("RICOCHET_CLICKHOUSE_PASSWORD", ""),
            compression: env_or("RICOCHET_CLICKHOUSE_COMPRESSION", "lz4") != "none",
        }
    }

    /// The same server with another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Self {
        ClickHouseConfig {
            database: database.into(),
            ..self.clone()
        }
    }

    /// A client with no default database (for server-level statements).
    pub fn server_client(&self) -> clickhouse::Client {
        let client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_compression(if self.compression {
                clickhouse::Compression::Lz4
            } else {
                clickhouse::Compression::None
            });
        if self.password.is_empty() {
            client
        } else {
            client.with_password(&self.password)
        }
    }

    /// A client whose unqualified table names resolve in [`database`](Self::database).
    pub fn client(&self) -> clickhouse::Client {
        self.server_client().with_database(&self.database)
    }
}
