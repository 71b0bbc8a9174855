//! Schema migrations: numbered SQL files in `schemas/clickhouse/`, applied in
//! order and recorded in `schema_migrations` with a SHA-256 checksum.
//!
//! Rules a migration file follows (checked by tests):
//! - its name is `NNNN_description.sql`, numbers strictly increasing;
//! - every statement is idempotent (`CREATE ... IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`),
//!   because ClickHouse has no transactional DDL: a migration interrupted half-way
//!   is simply run again from its first statement;
//! - once applied it never changes: the runner refuses to run when an applied
//!   file's checksum differs, naming the file.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::info;

use crate::cluster::{cluster_migrations, ClusterError, ClusterSpec};
use crate::config::ClickHouseConfig;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// Table recording applied migrations, inside Ricochet's database.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number in the file name.
    pub version: u32,
    /// The file name.
    pub name: String,
    /// The SQL text.
    pub sql: String,
    /// Hex SHA-256 of the SQL text.
    pub checksum: String,
}

/// Why migrations could not be read or applied.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// A file name does not follow `NNNN_description.sql`, or numbers repeat.
    #[error("migration file {name}: {why}")]
    BadFile { name: String, why: String },
    /// An applied migration's file changed since it was applied.
    #[error("migration {name} was changed after it was applied (recorded checksum {recorded}, file has {current}); add a new migration instead of editing an applied one")]
    ChecksumMismatch {
        name: String,
        recorded: String,
        current: String,
    },
    /// The database records a migration this build does not have.
    #[error("database has migration {version} ({name}) that this build does not know; is this binary older than the schema?")]
    UnknownApplied { version: u32, name: String },
    /// A statement failed.
    #[error("migration {name}, statement {statement}: {source}")]
    Statement {
        name: String,
        statement: usize,
        #[source]
        source: clickhouse::error::Error,
    },
    /// A statement has no cluster form.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// ClickHouse could not be reached or answered with an error.
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// A row of [`MIGRATIONS_TABLE`].
#[derive(Debug, Row, Serialize, Deserialize)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
}

impl Migration {
    /// Reads a migration from a file name and its text.
    pub fn new(name: &str, sql: &str) -> Result<Self, MigrationError> {
        let bad = |why: &str| MigrationError::BadFile {
            name: name.into(),
            why: why.into(),
        };
        let stem = name
            .strip_suffix(".sql")
            .ok_or_else(|| bad("not a .sql file"))?;
        let (number, description) = stem
            .split_once('_')
            .ok_or_else(|| bad("expected NNNN_description.sql"))?;
        if number.len() != 4 || description.is_empty() {
            return Err(bad("expected a four-digit number, '_' and a description"));
        }
        let version = number
            .parse()
            .map_err(|_| bad("the number is not numeric"))?;
        Ok(Migration {
            version,
            name: name.into(),
            sql: sql.into(),
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
        })
    }

    /// The statements of this migration: split at `;` ending a line, comments removed.
    pub fn statements(&self) -> Vec<String> {
        let mut out = vec![];
        let mut current = String::new();
        for line in self.sql.lines() {
            let line = match line.find("--") {
                Some(at) => &line[..at],
                None => line,
            };
            current.push_str(line);
            current.push('\n');
            if line.trim_end().ends_with(';') {
                push_statement(&mut out, &mut current);
            }
        }
        push_statement(&mut out, &mut current);
        out
    }
}

fn push_statement(out: &mut Vec<String>, current: &mut String) {
    let stmt = current.trim().trim_end_matches(';').trim();
    if !stmt.is_empty() {
        out.push(stmt.to_string());
    }
    current.clear();
}

/// The migrations compiled into this build, in order.
pub fn embedded() -> Result<Vec<Migration>, MigrationError> {
    let mut list = embedded::EMBEDDED
        .iter()
        .map(|(name, sql)| Migration::new(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_by_key(|m| m.version);
    for pair in list.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrationError::BadFile {
                name: pair[1].name.clone(),
                why: format!(
                    "number {} is also used by {}",
                    pair[1].version, pair[0].name
                ),
            });
        }
    }
    Ok(list)
}

/// Applies migrations to one database, or to the same database on every
/// node of a cluster.
pub struct Migrator {
    /// The nodes migrated, in turn (one for a single node or a cluster
    /// with `ON CLUSTER` DDL).
    nodes: Vec<ClickHouseConfig>,
    migrations: Vec<Migration>,
    /// The statements of each migration, in the form these nodes take.
    statements: Vec<Vec<String>>,
}

/// What a [`Migrator::run`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names of migrations applied by this run (on the first node).
    pub applied: Vec<String>,
    /// Number of migrations that were already applied (on the first node).
    pub already_applied: usize,
}

impl Migrator {
    /// A migrator for the embedded migrations.
    pub fn new(config: ClickHouseConfig) -> Result<Self, MigrationError> {
        Ok(Self::with_migrations(config, embedded()?))
    }

    /// A migrator for an explicit list (tests).
    pub fn with_migrations(config: ClickHouseConfig, migrations: Vec<Migration>) -> Self {
        let statements = migrations.iter().map(Migration::statements).collect();
        Migrator {
            nodes: vec![config],
            migrations,
            statements,
        }
    }

    /// A migrator for the cluster form of the embedded migrations: with a
    /// coordination service, run once on the first node (`ON CLUSTER`);
    /// without, on every node in turn.
    pub fn for_cluster(
        nodes: Vec<ClickHouseConfig>,
        spec: &ClusterSpec,
    ) -> Result<Self, MigrationError> {
        let migrations = embedded()?;
        let statements = cluster_migrations(&migrations, spec)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let nodes = match spec.coordinated {
            true => nodes.into_iter().take(1).collect(),
            false => nodes,
        };
        Ok(Migrator {
            nodes,
            migrations,
            statements,
        })
    }

    /// On every node: creates the database if needed, checks applied
    /// migrations, applies pending ones in order.
    pub async fn run(&self) -> Result<MigrationReport, MigrationError> {
        let mut first = None;
        for node in &self.nodes {
            let report = self.run_on(node).await?;
            first.get_or_insert(report);
        }
        Ok(first.unwrap_or_default())
    }

    async fn run_on(&self, node: &ClickHouseConfig) -> Result<MigrationReport, MigrationError> {
        let db = &node.database;
        node.server_client()
            .query(&format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .execute()
            .await?;
        let client = node.client();
        client
            .query(&format!(
                "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                    version UInt32, name String, checksum String,
                    applied_at DateTime64(3) DEFAULT now64(3)
                 ) ENGINE = MergeTree ORDER BY version"
            ))
            .execute()
            .await?;
        let applied: Vec<AppliedRow> = client
            .query(&format!(
                "SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
            ))
            .fetch_all()
            .await?;
        self.check_applied(&applied)?;
        let mut report = MigrationReport {
            already_applied: applied.len(),
            ..Default::default()
        };
        for (m, statements) in self.migrations.iter().zip(&self.statements) {
            if applied.iter().any(|r| r.version == m.version) {
                continue;
            }
            info!(migration = %m.name, database = %db, url = %node.url, "applying migration");
            apply(&client, m, statements).await?;
            report.applied.push(m.name.clone());
        }
        Ok(report)
    }

    /// Every applied migration is known and unchanged.
    fn check_applied(&self, applied: &[AppliedRow]) -> Result<(), MigrationError> {
        for row in applied {
            match self.migrations.iter().find(|m| m.version == row.version) {
                None => {
                    return Err(MigrationError::UnknownApplied {
                        version: row.version,
                        name: row.name.clone(),
                    })
                }
                Some(m) if m.checksum != row.checksum => {
                    return Err(MigrationError::ChecksumMismatch {
                        name: m.name.clone(),
                        recorded: row.checksum.clone(),
                        current: m.checksum.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Runs a migration's statements, then records it.
async fn apply(
    client: &clickhouse::Client,
    m: &Migration,
    statements: &[String],
) -> Result<(), MigrationError> {
    for (i, stmt) in statements.iter().enumerate() {
        client
            .query(stmt)
            .execute()
            .await
            .map_err(|source| MigrationError::Statement {
                name: m.name.clone(),
                statement: i + 1,
                source,
            })?;
    }
    let mut insert = client.insert::<AppliedRow>(MIGRATIONS_TABLE).await?;
    insert
        .write(&AppliedRow {
            version: m.version,
            name: m.name.clone(),
            checksum: m.checksum.clone(),
        })
        .await?;
    insert.end().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_checked() {
        assert!(Migration::new("0001_complaints.sql", "").is_ok());
        assert!(Migration::new("1_complaints.sql", "").is_err());
        assert!(Migration::new("0001complaints.sql", "").is_err());
        assert!(Migration::new("0001_complaints.txt", "").is_err());
    }

    #[test]
    fn statements_split_at_line_ending_semicolons_and_drop_comments() {
        let m = Migration::new(
            "0001_x.sql",
            "-- header\nCREATE TABLE IF NOT EXISTS a (s String DEFAULT ';') ENGINE = Log;\n\nCREATE TABLE IF NOT EXISTS b (x UInt8) -- trailing\nENGINE = Log;\n",
        )
        .unwrap();
        let s = m.statements();
        assert_eq!(s.len(), 2);
        assert!(s[0].starts_with("CREATE TABLE IF NOT EXISTS a"));
        assert!(s[1].ends_with("ENGINE = Log"));
    }

    #[test]
    fn shipped_migrations_are_numbered_and_idempotent() {
        let list = embedded().unwrap();
        assert!(list.len() >= 2);
        for (i, m) in list.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{} breaks the numbering", m.name);
            for stmt in m.statements() {
                let upper = stmt.to_uppercase();
                if upper.starts_with("CREATE") {
                    assert!(upper.contains("IF NOT EXISTS"), "{}: {stmt}", m.name);
                }
                if upper.contains("ADD COLUMN") {
                    assert!(
                        upper.contains("ADD COLUMN IF NOT EXISTS"),
                        "{}: {stmt}",
                        m.name
                    );
                }
            }
        }
    }
}
