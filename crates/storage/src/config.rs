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
}

impl ClickHouseConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        ClickHouseConfig {
            url: env_or("RICOCHET_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            database: env_or("RICOCHET_CLICKHOUSE_DATABASE", "ricochet"),
            user: env_or("RICOCHET_CLICKHOUSE_USER", "default"),
            password: env_or("RICOCHET_CLICKHOUSE_PASSWORD", ""),
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
            .with_user(&self.user);
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
