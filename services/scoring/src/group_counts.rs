//! Reading the window counts of groups of senders that share a key other
//! than the sender id: a campaign of one ESP across every sender id that
//! carries it, a From domain across every ESP. Groups are few next to
//! senders, so ClickHouse returns one row per (ESP, group, code, provider,
//! window bucket) with names, and the rows are folded here. Counted once
//! per token (FINAL), like the sender counts.
//!
//! The ESP level is not read here: it is the sum of its senders' counts,
//! kept in [`crate::books`].

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};

use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::counts::{bucket_sql, SenderCounts, SenderKey};
use crate::level::Level;
use crate::policy::{ComplaintCount, HeavyReporter, Name, Policy, WindowCounts};
use crate::windows::{Windows, COUNT};

/// Table listing the groups an incremental run rescores.
pub const GROUP_SCOPE: &str = "scoring_group_scope";
/// Table listing the groups whose reporters a run counts.
pub const GROUP_SUSPECTS: &str = "scoring_group_suspects";

/// A level read by SQL: its key expression and which rows carry a key.
pub struct GroupLevel {
    /// The level.
    pub level: Level,
    /// SQL expression of the key in `complaints` and `deliveries`.
    key: &'static str,
    /// SQL condition: the row belongs to some group of this level.
    carried: &'static str,
    /// Whether a group spans ESPs (its ESP is then empty).
    across_esps: bool,
}

/// The campaign level: `(esp, campaign)`, for rows with a campaign.
pub const CAMPAIGN: GroupLevel = GroupLevel {
    level: Level::Campaign,
    key: "campaign",
    carried: "campaign != ''",
    across_esps: false,
};

/// The domain level: `(domain)` across every ESP, for rows with a From domain.
pub const DOMAIN: GroupLevel = GroupLevel {
    level: Level::Domain,
    key: "from_domain",
    carried: "from_domain != ''",
    across_esps: true,
};

/// The ESP level, whose key is empty. Its counts come from the books; this
/// is for the reporter lookup of suspect ESPs.
pub const ESP: GroupLevel = GroupLevel {
    level: Level::Esp,
    key: "''",
    carried: "1",
    across_esps: false,
};

/// One group's counts and the ESPs whose rows they hold.
#[derive(Debug, Default)]
pub struct GroupCounts {
    /// Counts per window.
    pub counts: SenderCounts,
    /// ESPs with rows in some window (what a domain-level change reaches).
    pub carriers: BTreeSet<String>,
}

/// Which groups a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupScope {
    /// Every group with data.
    All,
    /// The groups of the level listed in [`GROUP_SCOPE`].
    Listed,
}

#[derive(Row, Deserialize)]
struct ComplaintAgg {
    esp: String,
    key: String,
    code: String,
    provider: String,
    b: u8,
    n: u64,
    first: i64,
}

#[derive(Row, Deserialize)]
struct DeliveryAgg {
    esp: String,
    key: String,
    provider: String,
    b: u8,
    delivered: u64,
    first: i64,
}

impl GroupLevel {
    /// SQL expression of a row's group ESP.
    fn esp(&self) -> &'static str {
        if self.across_esps {
            "''"
        } else {
            "esp"
        }
    }

    /// SQL condition: the row's group is listed in `table` for this level.
    fn listed_in(&self, table: &str) -> String {
        format!(
            "({}, {}) IN (SELECT esp, key FROM {table} WHERE level = '{}')",
            self.esp(),
            self.key,
            self.level.as_str()
        )
    }

    /// SQL condition for the rows of the groups in `scope`. For listed
    /// groups it first narrows the read to the senders that carry them:
    /// FINAL merges every row a filter on a non-key column leaves, while
    /// (esp, sender) prunes by the sorting key.
    fn filter(&self, scope: GroupScope, from_ms: i64) -> String {
        let carried = self.carried;
        match scope {
            GroupScope::All => carried.to_string(),
            GroupScope::Listed => {
                let listed = self.listed_in(GROUP_SCOPE);
                format!(
                    "{carried} AND {listed} AND (esp, sender) IN (
                         SELECT esp, sender FROM complaints
                         WHERE {carried} AND {listed} AND reported_at >= fromUnixTimestamp64Milli({from_ms})
                         UNION DISTINCT
                         SELECT esp, sender FROM deliveries
                         WHERE {carried} AND {listed} AND hour >= toDateTime(intDiv({from_ms}, 1000)))"
                )
            }
        }
    }

    /// Whether any row in `scope` carries a group of this level (FINAL
    /// costs a full merge even when the filter leaves nothing).
    async fn any_rows(
        &self,
        client: &Client,
        scope: GroupScope,
        from_ms: i64,
    ) -> clickhouse::error::Result<bool> {
        let listed = match scope {
            GroupScope::All => "1".to_string(),
            GroupScope::Listed => self.listed_in(GROUP_SCOPE),
        };
        let carried = self.carried;
        let n: u64 = client
            .query(&format!(
                "SELECT count() FROM (
                     SELECT 1 FROM complaints WHERE {carried} AND {listed}
                       AND reported_at >= fromUnixTimestamp64Milli({from_ms}) LIMIT 1
                     UNION ALL
                     SELECT 1 FROM deliveries WHERE {carried} AND {listed}
                       AND hour >= toDateTime(intDiv({from_ms}, 1000)) LIMIT 1)"
            ))
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// SQL listing the groups with rows loaded since `since_ms` into [`GROUP_SCOPE`].
    pub fn dirty_sql(&self, since_ms: i64) -> String {
        let (level, key, carried) = (self.level.as_str(), self.key, self.carried);
        let esp = self.esp();
        format!(
            "INSERT INTO {GROUP_SCOPE} (level, esp, key)
             SELECT DISTINCT '{level}', {esp}, {key} FROM complaints
             WHERE loaded_at >= fromUnixTimestamp64Milli({since_ms}) AND {carried}
             UNION DISTINCT
             SELECT DISTINCT '{level}', {esp}, {key} FROM deliveries
             WHERE loaded_at >= fromUnixTimestamp64Milli({since_ms}) AND {carried}"
        )
    }

    /// The counts of every group in `scope` at `now_ms`.
    pub async fn read(
        &self,
        client: &Client,
        scope: GroupScope,
        windows: &Windows,
        now_ms: i64,
    ) -> clickhouse::error::Result<HashMap<SenderKey, GroupCounts>> {
        let from_ms = now_ms - windows.longest_ms();
        if !self.any_rows(client, scope, from_ms).await? {
            return Ok(HashMap::new());
        }
        let filter = self.filter(scope, from_ms);
        let key = self.key;
        let (bucket, _) = bucket_sql(windows, now_ms);
        let final_settings = "SETTINGS do_not_merge_across_partitions_select_final = 1";
        let complaints = client
            .query(&format!(
                "SELECT esp, key, code, provider, b, count() AS n, min(t) AS first FROM (
                     SELECT toString(esp) AS esp, {key} AS key, toString(code) AS code,
                            toString(provider) AS provider, toUnixTimestamp64Milli(reported_at) AS t,
                            toUInt8({bucket}) AS b
                     FROM complaints FINAL WHERE {filter} AND t >= {from_ms} AND t <= {now_ms})
                 GROUP BY esp, key, code, provider, b {final_settings}"
            ))
            .fetch_all::<ComplaintAgg>();
        let deliveries = client
            .query(&format!(
                "SELECT esp, key, provider, b, toUInt64(sum(delivered)) AS delivered, min(t) AS first FROM (
                     SELECT toString(esp) AS esp, {key} AS key, toString(provider) AS provider, delivered,
                            toInt64(toUnixTimestamp(hour)) * 1000 AS t, toUInt8({bucket}) AS b
                     FROM deliveries FINAL WHERE {filter} AND t >= {from_ms} AND t <= {now_ms})
                 GROUP BY esp, key, provider, b {final_settings}"
            ))
            .fetch_all::<DeliveryAgg>();
        let (complaints, deliveries) = tokio::try_join!(complaints, deliveries)?;
        Ok(fold(complaints, deliveries, windows, self.across_esps))
    }

    /// The reporters over the cap in some window, for the groups of this
    /// level listed in [`GROUP_SUSPECTS`].
    pub async fn heavy_reporters(
        &self,
        client: &Client,
        policy: &Policy,
        now_ms: i64,
    ) -> clickhouse::error::Result<HashMap<SenderKey, Vec<(usize, HeavyReporter)>>> {
        // Through the suspects' senders, so FINAL reads only their key ranges.
        let (carried, listed) = (self.carried, self.listed_in(GROUP_SUSPECTS));
        let from_ms = now_ms - policy.windows.longest_ms();
        // And through the reporters over the cap without FINAL (copies of a
        // token can only add candidates): grouping every reporter of a whole
        // book under FINAL cost tens of seconds on the bench.
        let cap = policy.max_per_reporter;
        let filter = format!(
            "{carried} AND {listed} AND (esp, sender) IN (
                 SELECT esp, sender FROM complaints
                 WHERE {carried} AND {listed} AND reported_at >= fromUnixTimestamp64Milli({from_ms}))
             AND reporter IN (
                 SELECT reporter FROM complaints
                 WHERE {carried} AND {listed} AND reporter != ''
                   AND reported_at >= fromUnixTimestamp64Milli({from_ms})
                 GROUP BY reporter HAVING count() > {cap})"
        );
        let group = (self.esp(), self.key);
        crate::counts::reporters_over_cap(client, policy, now_ms, group, &filter).await
    }
}

/// Length in ms of window `b`.
fn window_ms(windows: &Windows, b: u8) -> i64 {
    windows.ms(usize::from(b).min(COUNT - 1))
}

/// Folds per-bucket rows into per-window counts (a window holds its own
/// bucket and every shorter one's). `across_esps`: one group per key, with
/// the ESPs of its rows as carriers.
fn fold(
    complaints: Vec<ComplaintAgg>,
    deliveries: Vec<DeliveryAgg>,
    windows: &Windows,
    across_esps: bool,
) -> HashMap<SenderKey, GroupCounts> {
    let mut out: HashMap<SenderKey, GroupCounts> = HashMap::new();
    let group_key = |esp: &str, key: String| {
        let esp = if across_esps { "" } else { esp };
        (esp.to_string(), key)
    };
    let mut names: HashMap<String, Name> = HashMap::new();
    let mut name = |s: String| names.entry(s.clone()).or_insert_with(|| s.into()).clone();
    let mut providers: HashMap<(SenderKey, Name), [u64; 4]> = HashMap::new();
    for r in deliveries {
        let provider = name(r.provider);
        let key = group_key(&r.esp, r.key);
        let group = out.entry(key.clone()).or_default();
        group.carriers.insert(r.esp);
        expire_at(&mut group.counts, r.first + window_ms(windows, r.b));
        let delivered = providers.entry((key, provider)).or_default();
        for n in &mut delivered[usize::from(r.b)..] {
            *n += r.delivered;
        }
    }
    for ((key, _), delivered) in providers {
        let counts = &mut out.entry(key).or_default().counts;
        for (i, n) in delivered.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let w = counts.windows[i].get_or_insert_with(WindowCounts::default);
            w.delivered += n;
            w.delivering_providers += 1;
        }
    }
    for r in complaints {
        let (code, provider) = (name(r.code), name(r.provider));
        let group = out.entry(group_key(&r.esp, r.key)).or_default();
        group.carriers.insert(r.esp);
        let counts = &mut group.counts;
        expire_at(counts, r.first + window_ms(windows, r.b));
        for i in usize::from(r.b)..COUNT {
            let w = counts.windows[i].get_or_insert_with(WindowCounts::default);
            match w
                .complaints
                .iter_mut()
                .find(|c| c.code == code && c.provider == provider)
            {
                Some(c) => c.complaints += r.n,
                None => w.complaints.push(ComplaintCount {
                    code: code.clone(),
                    provider: provider.clone(),
                    complaints: r.n,
                }),
            }
        }
    }
    out
}

/// Records that a row leaves its window at `left_ms`.
fn expire_at(counts: &mut SenderCounts, left_ms: i64) {
    let at = left_ms + 1;
    counts.next_expiry_ms = Some(counts.next_expiry_ms.map_or(at, |e| e.min(at)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fold_into_nested_windows_with_providers_and_expiry() {
        let key = |k: &str| ("e".to_string(), k.to_string());
        let c = |k: &str, code: &str, p: &str, b: u8, n: u64, first: i64| ComplaintAgg {
            esp: "e".into(),
            key: k.into(),
            code: code.into(),
            provider: p.into(),
            b,
            n,
            first,
        };
        let d = |k: &str, p: &str, b: u8, delivered: u64| DeliveryAgg {
            esp: "e".into(),
            key: k.into(),
            provider: p.into(),
            b,
            delivered,
            first: 10_000_000,
        };
        let out = fold(
            vec![
                c("c1", "unwanted", "p1", 0, 2, 5_000),
                c("c1", "unwanted", "p1", 2, 3, 1_000),
            ],
            vec![
                d("c1", "p1", 1, 500),
                d("c1", "p2", 3, 700),
                d("c2", "p1", 3, 9),
            ],
            &Windows::default(),
            false,
        );
        let c1 = &out[&key("c1")].counts;
        let w = |i: usize| c1.windows[i].as_ref().unwrap();
        assert_eq!(w(0).complaints(), 2);
        assert_eq!(w(0).delivered, 0);
        assert_eq!((w(1).delivered, w(1).delivering_providers), (500, 1));
        assert_eq!(w(2).complaints(), 5);
        assert_eq!((w(3).delivered, w(3).delivering_providers), (1200, 2));
        // The 1h bucket's row leaves first: 5,000 ms + 1 h.
        assert_eq!(c1.next_expiry_ms, Some(5_000 + 3_600_000 + 1));
        assert_eq!(
            out[&key("c2")].counts.windows[3]
                .as_ref()
                .unwrap()
                .delivered,
            9
        );
    }

    #[test]
    fn a_group_across_esps_sums_them_and_lists_them_as_carriers() {
        let row = |esp: &str, n: u64| ComplaintAgg {
            esp: esp.into(),
            key: "spam.example".into(),
            code: "unwanted".into(),
            provider: "p1".into(),
            b: 3,
            n,
            first: 0,
        };
        let out = fold(
            vec![row("esp-a", 4), row("esp-b", 5)],
            vec![],
            &Windows::default(),
            true,
        );
        let g = &out[&(String::new(), "spam.example".to_string())];
        assert_eq!(g.counts.windows[3].as_ref().unwrap().complaints(), 9);
        assert_eq!(g.carriers, BTreeSet::from(["esp-a".into(), "esp-b".into()]));
    }
}
