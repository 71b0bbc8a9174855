//! `ricochet dashboards check`: runs every panel query of the Grafana
//! dashboards, and every alert rule expression, against the real ClickHouse
//! and Prometheus, the way Grafana would, and checks each returns what its
//! panel draws.
//!
//! Grafana macros are expanded as the ClickHouse data source plugin expands
//! them (`$__timeFilter(c)`, `$__timeInterval(c)`, `$__fromTime`,
//! `$__toTime`), and `$__rate_interval` as Prometheus' `1m`; template
//! variables take the values given on the command line. Anything still
//! starting with `$` afterwards is an error: a macro this check does not
//! know would not be checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum DashboardsCommand {
    /// Run every panel query (and alert expression) and check its result.
    ///
    /// ClickHouse panels: the query runs on RICOCHET_CLICKHOUSE_URL /
    /// RICOCHET_CLICKHOUSE_DATABASE and must return rows; time series must
    /// return a `time` column first and a number after it. Prometheus panels
    /// (with --prometheus): every expression must return at least one series.
    Check {
        /// Folder of dashboard JSON files.
        #[arg(long, default_value = "dashboards")]
        dir: PathBuf,
        /// Value of the `esp` variable (repeat for several).
        #[arg(long, required = true)]
        esp: Vec<String>,
        /// Value of the `sender` variable.
        #[arg(long)]
        sender: String,
        /// Dashboard time range: this many hours back from now.
        #[arg(long, default_value_t = 24)]
        hours: i64,
        /// Prometheus base URL; without it, Prometheus panels are skipped.
        #[arg(long, env = "RICOCHET_PROMETHEUS_URL")]
        prometheus: Option<String>,
        /// Skip Prometheus panels even when a URL is set.
        #[arg(long)]
        clickhouse_only: bool,
        /// Alert rule files whose expressions must evaluate (need --prometheus).
        #[arg(long)]
        rules: Vec<PathBuf>,
    },
}

/// Values that replace Grafana's variables and macros.
#[derive(Debug, Clone)]
pub struct Substitution {
    /// `esp` variable values.
    pub esp: Vec<String>,
    /// `sender` variable value.
    pub sender: String,
    /// Range start, Unix seconds.
    pub from: i64,
    /// Range end, Unix seconds.
    pub to: i64,
    /// `$__interval` in seconds.
    pub interval_secs: i64,
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Replaces `name(arg)` calls of a one-argument macro with `f(arg)`.
fn expand_macro(sql: &str, name: &str, f: impl Fn(&str) -> String) -> Result<String> {
    let mut out = String::new();
    let mut rest = sql;
    let open = format!("{name}(");
    while let Some(i) = rest.find(&open) {
        out.push_str(&rest[..i]);
        let after = &rest[i + open.len()..];
        // The argument may hold parentheses itself: find the matching one.
        let mut depth = 1;
        let end = after
            .char_indices()
            .find_map(|(j, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(j)
            })
            .with_context(|| format!("unclosed {name}("))?;
        out.push_str(&f(after[..end].trim()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands a ClickHouse panel query the way Grafana and its plugin would.
pub fn expand_sql(sql: &str, s: &Substitution) -> Result<String> {
    let (from, to) = (s.from, s.to);
    let sql = expand_macro(sql, "$__timeFilter", |c| {
        format!("{c} >= toDateTime({from}) AND {c} <= toDateTime({to})")
    })?;
    let sql = expand_macro(&sql, "$__timeInterval", |c| {
        format!(
            "toStartOfInterval(toDateTime({c}), INTERVAL {} second)",
            s.interval_secs
        )
    })?;
    let esp_list = s.esp.iter().map(|e| quote(e)).collect::<Vec<_>>().join(",");
    let sql = sql
        .replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"))
        .replace("${esp:singlequote}", &esp_list)
        .replace("${sender}", &s.sender.replace('\'', "\\'"));
    if let Some(i) = sql.find('$') {
        bail!(
            "unknown macro or variable at: {}",
            &sql[i..(i + 30).min(sql.len())]
        );
    }
    Ok(sql)
}

/// Expands a PromQL panel expression.
pub fn expand_promql(expr: &str) -> Result<String> {
    let e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m");
    if let Some(i) = e.find('$') {
        bail!("unknown variable at: {}", &e[i..]);
    }
    Ok(e)
}

/// One panel target found in a dashboard.
#[derive(Debug)]
pub struct Target {
    /// "dashboard / panel / refId".
    pub name: String,
    /// Panel type (timeseries, table, stat...).
    pub panel_type: String,
    /// `grafana-clickhouse-datasource` or `prometheus`.
    pub datasource: String,
    /// SQL or PromQL.
    pub query: String,
}

/// Every target of every dashboard in `dir`, with the queries of the
/// dashboards' query variables as table targets.
pub fn targets(dir: &Path) -> Result<Vec<Target>> {
    let mut out = vec![];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no dashboard JSON in {}", dir.display());
    for file in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let title = d["title"].as_str().unwrap_or("?").to_string();
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                out.push(Target {
                    name: format!("{title} / variable {}", v["name"].as_str().unwrap_or("?")),
                    panel_type: "table".into(),
                    datasource: v["datasource"]["type"].as_str().unwrap_or("").into(),
                    query: v["query"].as_str().unwrap_or("").into(),
                });
            }
        }
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let ds = t["datasource"]["type"]
                    .as_str()
                    .or(p["datasource"]["type"].as_str())
                    .unwrap_or("")
                    .to_string();
                let query = t["rawSql"].as_str().or(t["expr"].as_str()).unwrap_or("");
                out.push(Target {
                    name: format!(
                        "{title} / {} / {}",
                        p["title"].as_str().unwrap_or("?"),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    panel_type: p["type"].as_str().unwrap_or("").into(),
                    datasource: ds,
                    query: query.into(),
                });
            }
        }
    }
    Ok(out)
}

/// Runs one SQL target and checks the shape of its result; returns the row count.
async fn check_sql(
    http: &reqwest::Client,
    url: &str,
    database: &str,
    t: &Target,
    s: &Substitution,
) -> Result<usize> {
    let sql = expand_sql(&t.query, s)?;
    let resp = http
        .post(url)
        .query(&[("database", database)])
        .body(format!("{sql} FORMAT JSONCompact"))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "ClickHouse answered {status}: {}",
        text.trim()
    );
    let v: Value = serde_json::from_str(&text)?;
    let meta: Vec<(String, String)> = v["meta"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let rows = v["data"].as_array().map_or(0, |d| d.len());
    anyhow::ensure!(rows > 0, "no rows");
    let numeric = |ty: &str| {
        ["Int", "UInt", "Float", "Decimal"]
            .iter()
            .any(|p| ty.trim_start_matches("Nullable(").starts_with(p))
    };
    match t.panel_type.as_str() {
        "timeseries" => {
            let (first, ty) = meta.first().context("no columns")?;
            anyhow::ensure!(
                first == "time" && ty.starts_with("DateTime"),
                "a time series needs a first column `time` of a DateTime type, got {first} {ty}"
            );
            anyhow::ensure!(
                meta.iter().skip(1).any(|(_, ty)| numeric(ty)),
                "a time series needs a numeric column"
            );
        }
        "stat" => anyhow::ensure!(
            meta.iter().any(|(_, ty)| numeric(ty)),
            "a stat needs a numeric column"
        ),
        _ => {}
    }
    Ok(rows)
}

/// Runs one PromQL expression; returns the number of series.
async fn check_promql(http: &reqwest::Client, base: &str, expr: &str) -> Result<usize> {
    let v: Value = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(v["status"] == "success", "Prometheus: {}", v["error"]);
    Ok(v["data"]["result"].as_array().map_or(0, |r| r.len()))
}

/// Alert rule expressions of a Prometheus rule file.
fn rule_exprs(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // The rule files are YAML; their `expr:` lines are single-line PromQL.
    let mut out = vec![];
    let mut alert = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(a) = l.strip_prefix("- alert:") {
            alert = a.trim().to_string();
        } else if let Some(e) = l.strip_prefix("expr:") {
            out.push((alert.clone(), e.trim().trim_matches('\'').to_string()));
        }
    }
    anyhow::ensure!(!out.is_empty(), "no `expr:` in {}", path.display());
    Ok(out)
}

/// `ricochet dashboards ...`.
pub async fn run(cmd: DashboardsCommand) -> Result<ExitCode> {
    let DashboardsCommand::Check {
        dir,
        esp,
        sender,
        hours,
        prometheus,
        clickhouse_only,
        rules,
    } = cmd;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let s = Substitution {
        esp,
        sender,
        from: now - hours * 3600,
        to: now + 60,
        interval_secs: (hours * 3600 / 200).max(60),
    };
    let ch = ricochet_storage::ClickHouseConfig::from_env()?;
    let prometheus = prometheus.filter(|_| !clickhouse_only);
    let http = reqwest::Client::new();
    let mut failures = 0;
    for t in targets(&dir)? {
        let outcome = match t.datasource.as_str() {
            "grafana-clickhouse-datasource" => check_sql(&http, &ch.url, &ch.database, &t, &s)
                .await
                .map(|n| format!("{n} rows")),
            "prometheus" => match &prometheus {
                None => {
                    println!("skip  {} (no --prometheus)", t.name);
                    continue;
                }
                Some(base) => match check_promql(&http, base, &expand_promql(&t.query)?).await {
                    Ok(0) => Err(anyhow::anyhow!("no series")),
                    Ok(n) => Ok(format!("{n} series")),
                    Err(e) => Err(e),
                },
            },
            other => Err(anyhow::anyhow!("unknown data source type {other:?}")),
        };
        report(&t.name, outcome, &mut failures);
    }
    if let Some(base) = &prometheus {
        for file in &rules {
            for (alert, expr) in rule_exprs(file)? {
                // An alert's expression returns nothing while it does not fire:
                // it must evaluate, not return series.
                let outcome = check_promql(&http, base, &expr)
                    .await
                    .map(|n| format!("evaluates ({n} firing series)"));
                report(&format!("alert {alert}"), outcome, &mut failures);
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} check(s) failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn report(name: &str, outcome: Result<String>, failures: &mut usize) {
    match outcome {
        Ok(what) => println!("ok    {name}: {what}"),
        Err(e) => {
            *failures += 1;
            println!("FAIL  {name}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subst() -> Substitution {
        Substitution {
            esp: vec!["a.example".into(), "b'x".into()],
            sender: "s1".into(),
            from: 100,
            to: 200,
            interval_secs: 60,
        }
    }

    #[test]
    fn macros_expand_like_the_plugin() {
        let sql = expand_sql(
            "SELECT $__timeInterval(toDateTime(t)) AS time FROM x WHERE $__timeFilter(t) AND esp IN (${esp:singlequote}) AND s = '${sender}' AND u < $__toTime",
            &subst(),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT toStartOfInterval(toDateTime(toDateTime(t)), INTERVAL 60 second) AS time FROM x WHERE t >= toDateTime(100) AND t <= toDateTime(200) AND esp IN ('a.example','b\\'x') AND s = 's1' AND u < toDateTime(200)"
        );
    }

    #[test]
    fn unknown_macros_are_refused() {
        assert!(expand_sql("SELECT $__unixEpochFilter(t)", &subst()).is_err());
        assert!(expand_sql("SELECT $__timeFilter(t", &subst()).is_err());
        assert!(expand_promql("rate(x[$__range])").is_err());
        assert_eq!(
            expand_promql("rate(x[$__rate_interval])").unwrap(),
            "rate(x[1m])"
        );
    }

    #[test]
    fn the_shipped_dashboards_have_targets_of_known_sources() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards");
        let all = targets(&dir).unwrap();
        assert!(all.len() >= 20, "{} targets", all.len());
        for t in &all {
            assert!(
                ["grafana-clickhouse-datasource", "prometheus"].contains(&t.datasource.as_str()),
                "{}: {}",
                t.name,
                t.datasource
            );
            assert!(!t.query.trim().is_empty(), "{} has no query", t.name);
        }
    }
}
