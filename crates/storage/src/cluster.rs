//! The cluster form of the migrations, generated from the single-node
//! files so the two can never drift: every table `t` becomes `t_local`
//! (the rows of one shard) with a `Distributed` table `t` in front of it,
//! sharded by `cityHash64(esp, sender)`; materialized views run on each
//! shard from `_local` to `_local`; plain views read the `Distributed`
//! tables. With a coordination service (ClickHouse Keeper or ZooKeeper)
//! the statements carry `ON CLUSTER` and the tables use the `Replicated*`
//! engines; without one they are run on every node in turn with the plain
//! engines (replicas are then not kept in sync: one replica per shard).
//!
//! Scoring's per-run work lists (`scoring_*`: the senders a run rescores,
//! its suspects, candidate reporters) are not sharded: each node keeps its
//! own, which the scoring instance connected to it fills, truncates
//! (`TRUNCATE` on a `Distributed` table would leave the shards' rows in
//! place) and reads with `GLOBAL IN`.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::migrations::Migration;

/// How the cluster is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The cluster's name in the servers' `remote_servers`.
    pub cluster: String,
    /// Whether a coordination service exists: `ON CLUSTER` DDL and the
    /// `Replicated*` engines (else plain engines, each node migrated alone).
    pub coordinated: bool,
}

/// A single-node statement the cluster form cannot be made of.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("migration {migration}: no cluster form for: {statement}")]
pub struct ClusterError {
    /// The migration file.
    pub migration: String,
    /// The statement, shortened.
    pub statement: String,
}

/// What the translation knows of the tables created so far.
#[derive(Debug, Default)]
struct Schema {
    /// Table → its sharding key.
    tables: BTreeMap<String, String>,
    /// Materialized views.
    views: BTreeSet<String>,
    /// Tables kept whole on every node (work lists).
    node_local: BTreeSet<String>,
}

/// Scoring's per-run work lists: kept on each node, not sharded.
fn is_work_list(table: &str) -> bool {
    table.starts_with("scoring_")
}

/// The cluster statements of every migration, in order, by file name.
pub fn cluster_migrations(
    migrations: &[Migration],
    spec: &ClusterSpec,
) -> Result<Vec<(String, Vec<String>)>, ClusterError> {
    let mut schema = Schema::default();
    migrations
        .iter()
        .map(|m| {
            let mut out = Vec::new();
            for stmt in m.statements() {
                let translated =
                    translate(&stmt, spec, &mut schema).ok_or_else(|| ClusterError {
                        migration: m.name.clone(),
                        statement: stmt.chars().take(120).collect(),
                    })?;
                out.extend(translated);
            }
            Ok((m.name.clone(), out))
        })
        .collect()
}

fn translate(stmt: &str, spec: &ClusterSpec, schema: &mut Schema) -> Option<Vec<String>> {
    let head: Vec<String> = stmt
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    match head.as_slice() {
        ["CREATE", "TABLE", ..] => create_table(stmt, spec, schema),
        ["CREATE", "MATERIALIZED", "VIEW", ..] => create_mv(stmt, spec, schema),
        ["CREATE", "VIEW", ..] => {
            Some(vec![with_cluster(stmt, "CREATE VIEW IF NOT EXISTS", spec)?])
        }
        ["ALTER", "TABLE", ..] => alter_table(stmt, spec, schema),
        ["DROP", "TABLE", ..] => drop_table(stmt, spec, schema),
        _ => None,
    }
}

/// ` ON CLUSTER c` when coordinated, else nothing.
fn on_cluster(spec: &ClusterSpec) -> String {
    if spec.coordinated {
        format!(" ON CLUSTER {}", spec.cluster)
    } else {
        String::new()
    }
}

/// `stmt` with its name followed by ` ON CLUSTER c`, after `prefix` (case as in the file).
fn with_cluster(stmt: &str, prefix: &str, spec: &ClusterSpec) -> Option<String> {
    let (name, rest) = split_name(stmt, prefix)?;
    Some(format!("{prefix} {name}{}{rest}", on_cluster(spec)))
}

/// The object name after `prefix` and the text after it.
fn split_name<'a>(stmt: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let body = stmt.get(prefix.len()..)?;
    if !stmt[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let body = body.trim_start();
    let end = body
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(body.len());
    Some((&body[..end], &body[end..]))
}

fn create_table(stmt: &str, spec: &ClusterSpec, schema: &mut Schema) -> Option<Vec<String>> {
    let prefix = "CREATE TABLE IF NOT EXISTS";
    let (name, rest) = split_name(stmt, prefix)?;
    if is_work_list(name) {
        schema.node_local.insert(name.to_string());
        return Some(vec![format!("{prefix} {name}{}{rest}", on_cluster(spec))]);
    }
    let engine_at = rest.to_ascii_uppercase().find("ENGINE")?;
    let (columns, engine_clause) = rest.split_at(engine_at);
    let key = sharding_key(columns, engine_clause)?;
    let local = format!("{name}_local");
    let engine = local_engine(engine_clause, &local, spec)?;
    schema.tables.insert(name.to_string(), key.clone());
    let cluster = on_cluster(spec);
    Some(vec![
        format!("{prefix} {local}{cluster}{columns}{engine}"),
        format!(
            "{prefix} {name}{cluster} AS {local} ENGINE = Distributed({}, currentDatabase(), {local}, {key})",
            spec.cluster
        ),
    ])
}

/// `cityHash64(esp, sender)` when the table has both columns, else of
/// what it has of them, else of its first sorting column.
fn sharding_key(columns: &str, engine_clause: &str) -> Option<String> {
    let names = column_names(columns);
    let has = |c: &str| names.iter().any(|n| n == c);
    let key = match (has("esp"), has("sender")) {
        (true, true) => "esp, sender".to_string(),
        (true, false) => "esp".to_string(),
        _ => {
            let upper = engine_clause.to_ascii_uppercase();
            let order = &engine_clause[upper.find("ORDER BY")? + "ORDER BY".len()..];
            let first = order
                .trim()
                .trim_start_matches('(')
                .split([',', ')', '\n'])
                .next()?;
            first.trim().to_string()
        }
    };
    Some(format!("cityHash64({key})"))
}

/// The column names of a `(...)` column list (indexes and projections skipped).
fn column_names(columns: &str) -> Vec<String> {
    let inner = columns.trim();
    let inner = inner.strip_prefix('(').unwrap_or(inner);
    let inner = inner.strip_suffix(')').unwrap_or(inner);
    let mut names = Vec::new();
    let mut depth = 0i32;
    let mut start = true;
    for (i, c) in inner.char_indices() {
        if start && !c.is_whitespace() {
            let word: String = inner[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let keyword =
                ["INDEX", "PROJECTION", "CONSTRAINT"].contains(&word.to_ascii_uppercase().as_str());
            if !word.is_empty() && !keyword {
                names.push(word);
            }
            start = false;
        }
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => start = true,
            _ => {}
        }
    }
    names
}

/// The engine clause for the shard's table: `Replicated*` with its Keeper
/// path when coordinated, as written otherwise.
fn local_engine(engine_clause: &str, local: &str, spec: &ClusterSpec) -> Option<String> {
    if !spec.coordinated {
        return Some(engine_clause.to_string());
    }
    let after = engine_clause["ENGINE".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let end = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    let (engine, rest) = after.split_at(end);
    if !engine.ends_with("MergeTree") {
        return None;
    }
    let path = format!("'/clickhouse/tables/{{shard}}/{{database}}/{local}', '{{replica}}'");
    let rest = match rest.strip_prefix('(') {
        Some(args) if !args.trim_start().starts_with(')') => format!("({path}, {args}"),
        Some(args) => format!("({path}{}", args.trim_start()),
        None => format!("({path}){rest}"),
    };
    Some(format!("ENGINE = Replicated{engine}{rest}"))
}

/// Table names after FROM or JOIN that are cluster tables, with `_local`.
fn local_sources(select: &str, schema: &Schema) -> String {
    let mut out = String::with_capacity(select.len() + 32);
    let mut previous = String::new();
    let mut rest = select;
    while !rest.is_empty() {
        let word_end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if word_end == 0 {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_end];
        out.push_str(word);
        if ["FROM", "JOIN"].contains(&previous.to_ascii_uppercase().as_str())
            && schema.tables.contains_key(word)
        {
            out.push_str("_local");
        }
        previous = word.to_string();
        rest = &rest[word_end..];
    }
    out
}

fn create_mv(stmt: &str, spec: &ClusterSpec, schema: &mut Schema) -> Option<Vec<String>> {
    let prefix = "CREATE MATERIALIZED VIEW IF NOT EXISTS";
    let (name, rest) = split_name(stmt, prefix)?;
    let rest = rest.trim_start();
    let after_to = rest
        .get(3..)
        .filter(|_| rest[..3].eq_ignore_ascii_case("TO "))?
        .trim_start();
    let (target, query) = after_to.split_at(after_to.find(char::is_whitespace)?);
    schema.tables.contains_key(target).then_some(())?;
    schema.views.insert(name.to_string());
    Some(vec![format!(
        "{prefix} {name}{} TO {target}_local{}",
        on_cluster(spec),
        local_sources(query, schema)
    )])
}

/// Splits `a, b(c, d), e` at its top-level commas.
fn top_level_split(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

fn alter_table(stmt: &str, spec: &ClusterSpec, schema: &mut Schema) -> Option<Vec<String>> {
    let (name, rest) = split_name(stmt, "ALTER TABLE")?;
    let cluster = on_cluster(spec);
    if schema.views.contains(name) {
        return Some(vec![format!(
            "ALTER TABLE {name}{cluster}{}",
            local_sources(rest, schema)
        )]);
    }
    if schema.node_local.contains(name) {
        return Some(vec![format!("ALTER TABLE {name}{cluster}{rest}")]);
    }
    schema.tables.contains_key(name).then_some(())?;
    let upper = rest.to_ascii_uppercase();
    let (actions, settings) = match upper.rfind(" SETTINGS ") {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let actions = top_level_split(actions);
    let both = |a: &&&str| {
        let a = a.to_ascii_uppercase();
        [
            "ADD COLUMN",
            "DROP COLUMN",
            "MODIFY COLUMN",
            "RENAME COLUMN",
            "COMMENT COLUMN",
        ]
        .iter()
        .any(|k| a.starts_with(k))
    };
    let mut out = vec![format!(
        "ALTER TABLE {name}_local{cluster} {}{settings}",
        actions.join(", ")
    )];
    let front: Vec<&str> = actions.iter().filter(both).copied().collect();
    if !front.is_empty() {
        out.push(format!("ALTER TABLE {name}{cluster} {}", front.join(", ")));
    }
    Some(out)
}

fn drop_table(stmt: &str, spec: &ClusterSpec, schema: &mut Schema) -> Option<Vec<String>> {
    let (name, _) = split_name(stmt, "DROP TABLE IF EXISTS")?;
    let cluster = on_cluster(spec);
    if schema.node_local.remove(name) {
        return Some(vec![format!("DROP TABLE IF EXISTS {name}{cluster} SYNC")]);
    }
    schema.tables.remove(name);
    Some(vec![
        format!("DROP TABLE IF EXISTS {name}{cluster} SYNC"),
        format!("DROP TABLE IF EXISTS {name}_local{cluster} SYNC"),
    ])
}
