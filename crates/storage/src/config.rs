//! Where ClickHouse is and which database Ricochet owns: a clap section
//! every service flattens into its own settings (`--clickhouse-*` flags,
//! `RICOCHET_CLICKHOUSE_*` variables), validated when the service starts.

use clap::{Args, Parser, ValueEnum};

/// Connection settings for ClickHouse's HTTP interface.
#[derive(Args, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// Base URL of ClickHouse's HTTP interface (http:// or https://).
    #[arg(
        long = "clickhouse-url",
        env = "RICOCHET_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123",
        value_parser = http_url
    )]
    pub url: String,
    /// Database holding Ricochet's tables.
    #[arg(
        long = "clickhouse-database",
        env = "RICOCHET_CLICKHOUSE_DATABASE",
        default_value = "ricochet"
    )]
    pub database: String,
    /// ClickHouse user.
    #[arg(
        long = "clickhouse-user",
        env = "RICOCHET_CLICKHOUSE_USER",
        default_value = "default"
    )]
    pub user: String,
    /// ClickHouse password (never logged or shown).
    #[arg(
        long = "clickhouse-password",
        env = "RICOCHET_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub password: String,
    /// Compression on the wire. Across a network LZ4 saves bandwidth; on
    /// loopback it only costs CPU on both ends.
    #[arg(
        long = "clickhouse-compression",
        env = "RICOCHET_CLICKHOUSE_COMPRESSION",
        value_enum,
        default_value_t = WireCompression::Lz4
    )]
    pub compression: WireCompression,
    /// The cluster Ricochet's tables are sharded over (`remote_servers`
    /// name; schema from `ricochet db migrate --cluster`). Every query then
    /// runs with `distributed_product_mode = global` (subqueries over
    /// sharded tables read the whole cluster) and every insert with
    /// `distributed_foreground_insert = 1` (acknowledged once the rows are
    /// on their shards).
    #[arg(long = "clickhouse-cluster", env = "RICOCHET_CLICKHOUSE_CLUSTER")]
    pub cluster: Option<String>,
}

/// How the client compresses what it sends to and reads from ClickHouse.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireCompression {
    /// LZ4 blocks.
    Lz4,
    /// Plain.
    None,
}

/// The password stays out of logs and panics.
impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = if self.password.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &password)
            .field("compression", &self.compression)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Accepts an http:// or https:// URL.
fn http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL has no host".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// The section alone, for tools that take no other flags.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct Only {
    #[command(flatten)]
    clickhouse: ClickHouseConfig,
}

impl ClickHouseConfig {
    /// Reads the settings from the environment alone (tools and tests);
    /// services flatten the section into their flags instead.
    pub fn from_env() -> Result<Self, clap::Error> {
        Only::try_parse_from(std::iter::empty::<String>()).map(|o| o.clickhouse)
    }

    /// The same server with another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Self {
        ClickHouseConfig {
            database: database.into(),
            ..self.clone()
        }
    }

    /// These settings for every node of a cluster: this one first, then
    /// each other URL of `urls` (same database, user and password).
    pub fn with_nodes<S: AsRef<str>>(&self, urls: &[S]) -> Vec<Self> {
        let mut nodes = vec![self.clone()];
        for url in urls.iter().map(|u| u.as_ref().trim()) {
            if url != self.url && !url.is_empty() {
                nodes.push(ClickHouseConfig {
                    url: url.to_string(),
                    ..self.clone()
                });
            }
        }
        nodes
    }

    /// A client with no default database (for server-level statements).
    pub fn server_client(&self) -> clickhouse::Client {
        let client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_compression(match self.compression {
                WireCompression::Lz4 => clickhouse::Compression::Lz4,
                WireCompression::None => clickhouse::Compression::None,
            });
        let client = match self.cluster {
            None => client,
            Some(_) => client
                .with_setting("distributed_product_mode", "global")
                .with_setting("distributed_foreground_insert", "1"),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ClickHouseConfig, clap::Error> {
        Only::try_parse_from(args).map(|o| o.clickhouse)
    }

    #[test]
    fn nodes_start_with_this_one_and_skip_it_in_the_list() {
        let c = parse(&["--clickhouse-url=http://a:8123", "--clickhouse-database=d"]).unwrap();
        let nodes = c.with_nodes(&["http://a:8123", " http://b:8123", ""]);
        let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
        assert_eq!(urls, ["http://a:8123", "http://b:8123"]);
        assert!(nodes.iter().all(|n| n.database == "d"));
    }

    #[test]
    fn defaults_flags_and_refusals() {
        let c = parse(&["--clickhouse-database", "x"]).unwrap();
        assert_eq!(c.database, "x");
        let c = parse(&["--clickhouse-compression", "lz4"]).unwrap();
        assert_eq!(c.compression, WireCompression::Lz4);
        let c = parse(&["--clickhouse-compression", "none"]).unwrap();
        assert_eq!(c.compression, WireCompression::None);
        let err = parse(&["--clickhouse-compression", "zstd"]).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        assert!(parse(&["--clickhouse-url", "127.0.0.1:8123"]).is_err());
        assert!(parse(&["--clickhouse-url", "http://"]).is_err());
    }

    #[test]
    fn the_password_is_never_in_debug() {
        let c = parse(&["--clickhouse-password", "hunter2"]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
