//! The per-reporter cap's lookups at the sender level: which suspects have a
//! reporter that may pass the cap, and those reporters' exact counts per
//! code and window (the group levels' are in [`super::group_reporters`]).

use clickhouse::{Client, Row};
use foldhash::{HashMap, HashMapExt};
use serde::Deserialize;

use super::parse_code;
use super::reader::{listed_in, window_counts, FINAL_SETTINGS};
use crate::books::Contributions;
use crate::counts::{add_code, over_cap, PerReporter, SenderCounts, SenderKey};
use crate::partition::Partition;
use crate::policy::{HeavyReporter, Name, Policy};

/// A heavy reporter's complaints per code, per window.
#[derive(Row, Deserialize)]
struct ReporterAgg {
    esp: String,
    sender: String,
    provider: String,
    reporter: String,
    code: String,
    n0: u64,
    n1: u64,
    n2: u64,
    n3: u64,
}

/// The heavy reporters of this run's suspects. Their senders are listed
/// twice in `scoring_suspects`: all suspects for a cheap pass over their
/// complaints, then only those with a reporter that may pass the cap, for
/// the exact count. Lists go through that table, not the query text, which
/// ClickHouse bounds in size.
pub async fn suspects_heavy_reporters(
    client: &Client,
    part: Partition,
    policy: &Policy,
    suspects: &[(SenderKey, SenderCounts, Contributions)],
    now_ms: i64,
) -> crate::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    if suspects.is_empty() {
        return Ok(HashMap::new());
    }
    super::scope::list_suspects(client, part, suspects.iter().map(|(key, _, _)| key)).await?;
    let candidates = reporter_cap_candidates(client, part, policy, now_ms).await?;
    if candidates.is_empty() {
        // The usual case: nobody reported a suspect more than the cap allows.
        return Ok(HashMap::new());
    }
    super::scope::list_suspects(client, part, &candidates).await?;
    heavy_reporters(client, part, policy, now_ms).await
}

/// The senders listed in `scoring_suspects` with a reporter that may pass
/// the cap: one with more complaints than the cap in the longest window (a
/// superset of those over it in any shorter one). This pass reads without
/// FINAL (which merges a whole partition once it has a new part), groups by
/// hashes of (esp, sender) and of reporter, numbers instead of three
/// strings, and picks the senders from the list by their hash instead of
/// reading their complaints again: copies of a token and hash collisions can
/// only add candidates, which the exact count drops. Each of the three took
/// 0.5 s or more off (50M complaints).
pub async fn reporter_cap_candidates(
    client: &Client,
    part: Partition,
    policy: &Policy,
    now_ms: i64,
) -> crate::error::Result<Vec<SenderKey>> {
    let from_ms = now_ms - policy.windows.longest_ms();
    let list = part.list("scoring_suspects");
    let suspects = listed_in(&list);
    client
        .query(&format!(
            "SELECT esp, sender FROM {list} WHERE cityHash64(esp, sender) IN (
                 SELECT s FROM complaints
                 WHERE toUnixTimestamp64Milli(reported_at) BETWEEN {from_ms} AND {now_ms}
                   AND reporter != '' AND {suspects}
                 GROUP BY cityHash64(esp, sender) AS s, cityHash64(reporter) AS r
                 HAVING count() > {})",
            policy.max_per_reporter
        ))
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// The reporters over the cap in some window, for the senders listed in
/// `scoring_suspects` (after [`reporter_cap_candidates`], only those few):
/// per sender, (window index, reporter with its per-code counts in that
/// window). Counted once per token (FINAL).
pub async fn heavy_reporters(
    client: &Client,
    part: Partition,
    policy: &Policy,
    now_ms: i64,
) -> crate::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
    let filter = listed_in(&part.list("scoring_suspects"));
    let from_ms = now_ms - policy.windows.longest_ms();
    // Only the (sender, provider, reporter) groups over the cap in the
    // longest window come back; [`over_cap`] checks each window.
    let rows = client
        .query(&format!(
            "SELECT esp, sender, provider, reporter, code, n0, n1, n2, n3 FROM (
                 SELECT *, sum(n3) OVER (PARTITION BY esp, sender, provider, reporter) AS total FROM (
                     SELECT esp, sender, toString(provider) AS provider,
                            reporter, toString(code) AS code, {} FROM (
                         SELECT esp, sender, provider, reporter, code,
                                toUnixTimestamp64Milli(reported_at) AS t
                         FROM complaints FINAL
                         WHERE {filter} AND t >= {from_ms} AND t <= {now_ms} AND reporter != '')
                     GROUP BY esp, sender, provider, reporter, code))
             WHERE total > {} {FINAL_SETTINGS}",
            window_counts(&policy.windows, now_ms),
            policy.max_per_reporter,
        ))
        .fetch_all::<ReporterAgg>()
        .await?;
    let mut per_reporter = PerReporter::new();
    for r in rows {
        let key = ((r.esp, r.sender), Name::from(r.provider), r.reporter);
        let code = parse_code(&r.code)?;
        add_code(&mut per_reporter, key, code, [r.n0, r.n1, r.n2, r.n3]);
    }
    Ok(over_cap(per_reporter, policy.max_per_reporter))
}
