//! The reporters over the cap at the levels above the sender: a reporter
//! under the cap at each of 40 sender ids may be far over it at their
//! campaign. The groups' counts themselves come from [`crate::books`]; only
//! this lookup reads their rows, and only for groups whose counts without
//! the cap reach a tier.
//!
//! One lookup serves every level, in two passes:
//! 1. **Candidates**, without FINAL: per level, the reporters with more
//!    complaints than the cap across all of that level's suspects. A
//!    reporter over the cap at one group has more than the cap across its
//!    level's suspects, so none is missed; copies of a token and hash
//!    collisions only add candidates.
//! 2. **Exact count**, FINAL and once per token, of the candidates' rows
//!    only, summed per group here.
//!
//! A pass per level through the suspects' senders took 13–20 s on the
//! bench (1,500 suspect groups, 50M complaints); these two take about 3 s.

use clickhouse::{Client, Row};
use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::books::GroupKey;
use crate::counts::{add_code, over_cap, PerReporter};
use crate::partition::Partition;
use crate::policy::{HeavyReporter, Name, Policy};
use crate::store::reader::{window_counts, FINAL_SETTINGS};
use ricochet_kafka::Level;

/// Table listing the groups whose reporters a run counts (each
/// instance's own copy, [`Partition::list`]).
pub const GROUP_SUSPECTS: &str = "scoring_group_suspects";

/// Table of the reporters (hashes) the exact count reads (each instance's own copy).
const CANDIDATES: &str = "scoring_reporter_candidates";

/// The work lists one instance's lookup uses.
#[derive(Clone)]
struct Lists {
    suspects: String,
    candidates: String,
}

impl Lists {
    fn of(part: Partition) -> Lists {
        Lists {
            suspects: part.list(GROUP_SUSPECTS),
            candidates: part.list(CANDIDATES),
        }
    }
}

/// SQL of one candidate reporter: a 32-bit hash of provider and pseudonym
/// (half the hash table of a 64-bit one; collisions only add candidates).
const REPORTER_HASH: &str = "toUInt32(cityHash64(provider, reporter))";

/// A level above the sender: which of a complaint's columns make its key.
#[derive(Debug, Clone, Copy)]
struct GroupLevel(Level);

impl GroupLevel {
    /// The levels this lookup serves.
    const ALL: [GroupLevel; 3] = [
        GroupLevel(Level::Esp),
        GroupLevel(Level::Campaign),
        GroupLevel(Level::Domain),
    ];

    /// SQL condition: the row belongs to a group of this level listed in
    /// [`GROUP_SUSPECTS`]. Each test reads one or two columns: an `OR` of
    /// the three in one pass cost four times their sum (measured).
    fn listed(self, lists: &Lists) -> String {
        let level = self.0.as_str();
        let table = &lists.suspects;
        let list =
            |columns: &str| format!("(SELECT {columns} FROM {table} WHERE level = '{level}')");
        match self.0 {
            Level::Esp => format!("esp GLOBAL IN {}", list("esp")),
            Level::Campaign => {
                format!(
                    "campaign != '' AND (esp, campaign) GLOBAL IN {}",
                    list("esp, key")
                )
            }
            Level::Domain => format!(
                "from_domain != '' AND from_domain GLOBAL IN {}",
                list("key")
            ),
            Level::Sender => unreachable!("the sender level has its own lookup"),
        }
    }

    /// The group of this level a complaint row belongs to, if any.
    fn key_of(self, row: &GroupReporterRow) -> Option<GroupKey> {
        let key = match self.0 {
            Level::Esp => (row.esp.clone(), String::new()),
            Level::Campaign if !row.campaign.is_empty() => (row.esp.clone(), row.campaign.clone()),
            Level::Domain if !row.from_domain.is_empty() => {
                (String::new(), row.from_domain.clone())
            }
            _ => return None,
        };
        Some((self.0, key.0, key.1))
    }
}

/// A candidate reporter's complaints per code and window, per ESP,
/// campaign and From domain.
#[derive(Row, Deserialize)]
struct GroupReporterRow {
    esp: String,
    campaign: String,
    from_domain: String,
    provider: String,
    reporter: String,
    code: String,
    n0: u64,
    n1: u64,
    n2: u64,
    n3: u64,
}

/// The reporters over the cap in some window of each of `suspects`: per
/// group, (window index, reporter with its per-code counts in that window).
pub async fn heavy_reporters(
    client: &Client,
    part: Partition,
    (policy, now_ms): (&Policy, i64),
    suspects: &[GroupKey],
) -> crate::error::Result<HashMap<GroupKey, Vec<(usize, HeavyReporter)>>> {
    let levels: Vec<GroupLevel> = GroupLevel::ALL
        .into_iter()
        .filter(|l| suspects.iter().any(|k| k.0 == l.0))
        .collect();
    if levels.is_empty() {
        return Ok(HashMap::default());
    }
    let lists = Lists::of(part);
    list_suspects(client, &lists, suspects).await?;
    let window = format!(
        "toUnixTimestamp64Milli(reported_at) BETWEEN {} AND {now_ms}",
        now_ms - policy.windows.longest_ms()
    );
    if !list_candidates(client, &lists, policy, &levels, &window).await? {
        // The usual case: nobody reported a suspect more than the cap allows.
        return Ok(HashMap::default());
    }
    let rows = exact_counts(client, &lists, (policy, now_ms), &levels, &window).await?;
    let suspects: HashSet<&GroupKey> = suspects.iter().collect();
    let mut per_reporter = PerReporter::default();
    for row in rows {
        let (provider, code) = (
            Name::from(row.provider.as_str()),
            super::parse_code(&row.code)?,
        );
        let n = [row.n0, row.n1, row.n2, row.n3];
        for key in levels.iter().filter_map(|l| l.key_of(&row)) {
            if suspects.contains(&key) {
                let reporter = (key, provider.clone(), row.reporter.clone());
                add_code(&mut per_reporter, reporter, code, n);
            }
        }
    }
    Ok(over_cap(per_reporter, policy.max_per_reporter))
}

#[derive(Row, Serialize)]
struct GroupRow<'a> {
    level: &'a str,
    esp: &'a str,
    key: &'a str,
}

/// Lists `suspects` in [`GROUP_SUSPECTS`], in place of what it held. Lists go
/// through a table, not the query text, which ClickHouse bounds in size.
async fn list_suspects(
    client: &Client,
    lists: &Lists,
    suspects: &[GroupKey],
) -> crate::error::Result<()> {
    let table = &lists.suspects;
    client
        .query(&format!("TRUNCATE TABLE {table}"))
        .execute()
        .await?;
    let mut insert = client.insert::<GroupRow>(table).await?;
    for (level, esp, key) in suspects {
        let row = GroupRow {
            level: level.as_str(),
            esp,
            key,
        };
        insert.write(&row).await?;
    }
    insert.end().await.map_err(Into::into)
}

/// Fills [`CANDIDATES`] (pass 1); returns whether it holds any.
async fn list_candidates(
    client: &Client,
    lists: &Lists,
    policy: &Policy,
    levels: &[GroupLevel],
    window: &str,
) -> crate::error::Result<bool> {
    let candidates = &lists.candidates;
    client
        .query(&format!("TRUNCATE TABLE {candidates}"))
        .execute()
        .await?;
    let per_level: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "SELECT {i} AS l, provider, reporter FROM complaints
                 WHERE reporter != '' AND {window} AND {}",
                l.listed(lists)
            )
        })
        .collect();
    client
        .query(&format!(
            "INSERT INTO {candidates} SELECT DISTINCT h FROM (
                 SELECT l, {REPORTER_HASH} AS h FROM ({})
                 GROUP BY l, h HAVING count() > {})",
            per_level.join(" UNION ALL "),
            policy.max_per_reporter
        ))
        .execute()
        .await?;
    let listed: u64 = client
        .query(&format!("SELECT count() FROM {candidates}"))
        .fetch_one()
        .await?;
    Ok(listed > 0)
}

/// The candidates' complaints in the suspects' groups, once per token
/// (pass 2). The tokens are picked by the sorting key, so FINAL reads only
/// their ranges; the copy FINAL keeps must still be a candidate's.
async fn exact_counts(
    client: &Client,
    lists: &Lists,
    (policy, now_ms): (&Policy, i64),
    levels: &[GroupLevel],
    window: &str,
) -> crate::error::Result<Vec<GroupReporterRow>> {
    let candidate = format!(
        "reporter != '' AND {REPORTER_HASH} GLOBAL IN (SELECT h FROM {})",
        lists.candidates
    );
    let listed: Vec<String> = levels
        .iter()
        .map(|l| format!("({})", l.listed(lists)))
        .collect();
    client
        .query(&format!(
            "SELECT esp, campaign, from_domain, toString(provider) AS provider, reporter,
                    toString(code) AS code, {} FROM (
                 SELECT esp, campaign, from_domain, provider, reporter, code,
                        toUnixTimestamp64Milli(reported_at) AS t
                 FROM complaints FINAL
                 WHERE (esp, sender, jti) IN (
                           SELECT esp, sender, jti FROM complaints WHERE {window} AND {candidate})
                   AND {window} AND {candidate} AND ({}))
             GROUP BY esp, campaign, from_domain, provider, reporter, code {FINAL_SETTINGS}",
            window_counts(&policy.windows, now_ms),
            listed.join(" OR "),
        ))
        .fetch_all()
        .await
        .map_err(Into::into)
}
