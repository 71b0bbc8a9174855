//! Scoring at the levels above the sender: the ESP's whole book, each
//! campaign across its sender ids and each From domain across ESPs, with
//! the sender level's rules (weights,
//! caps, Wilson bounds, minimum volume, windows, tiers, hysteresis), evidence
//! and chain. A spammer that spreads its mail over fresh sender ids, each
//! under the minimum volume, still adds up at these levels.

use std::collections::BTreeMap;

use clickhouse::{Client, Row};
use foldhash::{HashMap, HashMapExt, HashSet};
use serde::{Deserialize, Serialize};

use crate::books::{Book, Names};
use crate::chain::PenaltyEntry;
use crate::counts::SenderCounts;
use crate::domains::Told;
use crate::group_counts::{GroupLevel, GroupScope, CAMPAIGN, DOMAIN, GROUP_SCOPE, GROUP_SUSPECTS};
use crate::hysteresis::Standing;
use crate::level::Level;
use crate::policy::{HeavyReporter, Policy, Tier};
use crate::snapshots::SnapshotWriter;
use crate::verdict::{assess_windows, decide, evidence_tier, write_snapshots, Subject};

/// (level, esp, key): a group. The ESP level's key is empty.
pub type GroupKey = (Level, String, String);

/// A row of `group_standing`.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct GroupStandingRow {
    level: String,
    esp: String,
    key: String,
    tier: String,
    below_since: Option<i64>,
    updated_at: i64,
}

/// What the scorer remembers of the groups between runs.
#[derive(Default)]
pub struct GroupMemory {
    /// Tier in force, for groups not in the default standing.
    pub standing: HashMap<GroupKey, Standing>,
    /// When each group must be rescored although nothing new came for it.
    pub due_ms: HashMap<GroupKey, i64>,
    /// Each ESP's book (the ESP level's counts).
    pub books: BTreeMap<String, Book>,
    /// Code and provider ids of the books.
    pub names: Names,
    /// What each ESP was last told of each domain.
    pub told: Told,
    /// Server clock (ms) when the last run that rescored the campaign and
    /// domain levels started reading.
    pub loaded_mark_ms: i64,
    /// The ESP level's reporters over the cap, as the last full run found them.
    pub esp_heavy: HashMap<GroupKey, Vec<(usize, HeavyReporter)>>,
}

/// What the group levels of one run decided.
#[derive(Default)]
pub struct GroupVerdicts {
    /// Tier changes, unsealed.
    pub changes: Vec<PenaltyEntry>,
    /// Standings that changed.
    pub standing_rows: Vec<GroupStandingRow>,
    /// Groups assessed, per level.
    pub assessed: BTreeMap<Level, usize>,
}

impl GroupMemory {
    /// Reads the group standings in force (a full run's start).
    pub async fn load(client: &Client) -> clickhouse::error::Result<GroupMemory> {
        let rows: Vec<GroupStandingRow> = client
            .query("SELECT toString(level) AS level, toString(esp) AS esp, key, toString(tier) AS tier, below_since, updated_at FROM group_standing FINAL")
            .fetch_all()
            .await?;
        let mut standing = HashMap::new();
        for r in rows {
            let level = r.level.parse().map_err(custom)?;
            let tier = r.tier.parse().map_err(custom)?;
            let s = Standing {
                tier,
                below_since: r.below_since,
            };
            if s != Standing::default() {
                standing.insert((level, r.esp, r.key), s);
            }
        }
        Ok(GroupMemory {
            standing,
            told: Told::load(client).await?,
            ..Default::default()
        })
    }

    /// Groups due at `now_ms` of `level`.
    fn due(&self, level: Level, now_ms: i64) -> impl Iterator<Item = &GroupKey> {
        self.due_ms
            .iter()
            .filter(move |(k, at)| k.0 == level && **at <= now_ms)
            .map(|(k, _)| k)
    }

    /// Lists this run's dirty campaigns and domains in [`GROUP_SCOPE`]:
    /// rows loaded since `since_ms`, and those due.
    pub async fn fill_scope(
        &self,
        client: &Client,
        since_ms: i64,
        now_ms: i64,
    ) -> clickhouse::error::Result<()> {
        client
            .query(&format!("TRUNCATE TABLE {GROUP_SCOPE}"))
            .execute()
            .await?;
        for level in [CAMPAIGN, DOMAIN] {
            client.query(&level.dirty_sql(since_ms)).execute().await?;
        }
        let due = self
            .due(Level::Campaign, now_ms)
            .chain(self.due(Level::Domain, now_ms));
        insert_groups(client, GROUP_SCOPE, due).await
    }
}

fn custom(e: impl std::fmt::Display) -> clickhouse::error::Error {
    clickhouse::error::Error::Custom(e.to_string())
}

#[derive(Row, Serialize)]
struct GroupRow<'a> {
    level: &'a str,
    esp: &'a str,
    key: &'a str,
}

/// Appends groups to a list table.
async fn insert_groups<'k>(
    client: &Client,
    table: &str,
    keys: impl IntoIterator<Item = &'k GroupKey>,
) -> clickhouse::error::Result<()> {
    let mut keys = keys.into_iter().peekable();
    if keys.peek().is_none() {
        return Ok(());
    }
    let mut insert = client.insert::<GroupRow>(table).await?;
    for (level, esp, key) in keys {
        let row = GroupRow {
            level: level.as_str(),
            esp,
            key,
        };
        insert.write(&row).await?;
    }
    insert.end().await
}

/// What a group run needs besides the memory.
pub struct GroupRun<'a> {
    /// ClickHouse.
    pub client: &'a Client,
    /// The policy in force.
    pub policy: &'a Policy,
    /// Run time.
    pub now_ms: i64,
    /// Whether every group is rescored (else the dirty ones).
    pub full: bool,
    /// Whether the campaign and domain levels are rescored this run.
    pub campaigns_and_domains: bool,
}

impl GroupRun<'_> {
    /// Scores the ESP level of `esps` (the ESPs whose books changed, or
    /// all), the campaign and the domain level, and writes their snapshots.
    pub async fn score(
        &self,
        memory: &mut GroupMemory,
        esps: HashSet<String>,
        snapshots: &mut SnapshotWriter,
    ) -> clickhouse::error::Result<GroupVerdicts> {
        let mut groups: HashMap<GroupKey, SenderCounts> = HashMap::new();
        let mut esps = esps;
        esps.extend(memory.due(Level::Esp, self.now_ms).map(|k| k.1.clone()));
        if self.full {
            esps.extend(memory.books.keys().cloned());
        }
        for esp in esps {
            let counts = memory
                .books
                .get(&esp)
                .map(|b| b.counts(&memory.names))
                .unwrap_or_default();
            groups.insert((Level::Esp, esp, String::new()), counts);
        }
        let scope = if self.full {
            GroupScope::All
        } else {
            GroupScope::Listed
        };
        let windows = &self.policy.windows;
        let (campaigns, domains) = if self.campaigns_and_domains {
            tokio::try_join!(
                CAMPAIGN.read(self.client, scope, windows, self.now_ms),
                DOMAIN.read(self.client, scope, windows, self.now_ms)
            )?
        } else {
            Default::default()
        };
        for ((esp, key), g) in campaigns {
            groups.insert((Level::Campaign, esp, key), g.counts);
        }
        let mut carriers = HashMap::new();
        for ((esp, key), g) in domains {
            carriers.insert(key.clone(), g.carriers);
            groups.insert((Level::Domain, esp, key), g.counts);
        }
        // Groups in scope without rows still step (a cool-down may end).
        let listed: Vec<GroupKey> = if self.full {
            memory.standing.keys().cloned().collect()
        } else if self.campaigns_and_domains {
            let due = memory.due(Level::Campaign, self.now_ms);
            due.chain(memory.due(Level::Domain, self.now_ms))
                .cloned()
                .collect()
        } else {
            vec![]
        };
        for key in listed {
            groups.entry(key).or_default();
        }
        self.add_heavy_reporters(memory, &mut groups).await?;
        let mut out = GroupVerdicts::default();
        let mut keys: Vec<GroupKey> = groups.keys().cloned().collect();
        keys.sort_unstable();
        let none = Default::default();
        for key in keys {
            let counts = &groups[&key];
            let carriers = carriers.get(&key.2).unwrap_or(&none);
            self.judge(memory, &key, counts, carriers, snapshots, &mut out)
                .await?;
            *out.assessed.entry(key.0).or_default() += 1;
        }
        Ok(out)
    }

    /// Looks up the reporters over the cap for the groups whose counts
    /// without the cap reach a tier (the cap only ever lowers a rate), per
    /// level that has such groups. The ESP level's reporters are counted in
    /// full runs only (over a whole book they cost seconds) and reused by
    /// the incremental runs until the next full one.
    async fn add_heavy_reporters(
        &self,
        memory: &mut GroupMemory,
        groups: &mut HashMap<GroupKey, SenderCounts>,
    ) -> clickhouse::error::Result<()> {
        let suspects: Vec<GroupKey> = groups
            .iter()
            .filter(|(k, c)| {
                let policy = self.policy.for_level(k.0);
                evidence_tier(&assess_windows(c, &policy)).is_some_and(|t| t > Tier::Ok)
            })
            .map(|(k, _)| k.clone())
            .filter(|k| self.full || k.0 != Level::Esp)
            .collect();
        let mut heavy = HashMap::new();
        if !suspects.is_empty() {
            self.client
                .query(&format!("TRUNCATE TABLE {GROUP_SUSPECTS}"))
                .execute()
                .await?;
            insert_groups(self.client, GROUP_SUSPECTS, &suspects).await?;
        }
        for level in [ESP_LEVEL, CAMPAIGN, DOMAIN] {
            if !suspects.iter().any(|k| k.0 == level.level) {
                continue;
            }
            let found = level
                .heavy_reporters(self.client, self.policy, self.now_ms)
                .await?;
            for ((esp, key), reporters) in found {
                heavy.insert((level.level, esp, key), reporters);
            }
        }
        if self.full {
            memory.esp_heavy = heavy
                .iter()
                .filter(|(k, _)| k.0 == Level::Esp)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        } else {
            for (k, v) in &memory.esp_heavy {
                heavy.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for (key, reporters) in heavy {
            let Some(c) = groups.get_mut(&key) else {
                continue;
            };
            for (i, reporter) in reporters {
                if let Some(w) = c.windows[i].as_mut() {
                    w.heavy_reporters.push(reporter);
                }
            }
        }
        Ok(())
    }

    /// Assesses one group, steps its standing and records the outcome (a
    /// domain's in the chains of the ESPs that carry it).
    async fn judge(
        &self,
        memory: &mut GroupMemory,
        key: &GroupKey,
        counts: &SenderCounts,
        carriers: &std::collections::BTreeSet<String>,
        snapshots: &mut SnapshotWriter,
        out: &mut GroupVerdicts,
    ) -> clickhouse::error::Result<()> {
        let (level, esp, group) = key;
        let policy = self.policy.for_level(*level);
        let assessed = assess_windows(counts, &policy);
        write_snapshots(snapshots, *level, esp, group, &assessed).await?;
        let before = memory.standing.get(key).copied().unwrap_or_default();
        let subject = Subject {
            level: *level,
            esp,
            key: group,
        };
        let d = decide(
            &policy,
            self.now_ms,
            subject,
            before,
            &assessed,
            &[],
            counts.next_expiry_ms,
        );
        if *level == Level::Domain {
            let rows = memory
                .told
                .fan_out(group, carriers, &d, &assessed, (&policy, self.now_ms));
            out.changes.extend(rows);
        } else {
            out.changes.extend(d.change.clone());
        }
        if d.after != before {
            out.standing_rows.push(GroupStandingRow {
                level: level.as_str().into(),
                esp: esp.clone(),
                key: group.clone(),
                tier: d.after.tier.as_str().into(),
                below_since: d.after.below_since,
                updated_at: self.now_ms,
            });
        }
        if d.after == Standing::default() {
            memory.standing.remove(key);
        } else {
            memory.standing.insert(key.clone(), d.after);
        }
        match d.due_ms {
            Some(at) => memory.due_ms.insert(key.clone(), at),
            None => memory.due_ms.remove(key),
        };
        Ok(())
    }
}

/// The ESP level, for the reporter lookup (its counts come from the books).
const ESP_LEVEL: GroupLevel = crate::group_counts::ESP;

/// Tiers in force per level above the sender (groups in the default
/// standing with data count as `ok`).
pub fn per_tier(memory: &GroupMemory) -> BTreeMap<(Level, Tier), usize> {
    let mut out: BTreeMap<(Level, Tier), usize> = BTreeMap::new();
    for (k, s) in &memory.standing {
        *out.entry((k.0, s.tier)).or_default() += 1;
    }
    for esp in memory.books.keys() {
        if !memory
            .standing
            .contains_key(&(Level::Esp, esp.clone(), String::new()))
        {
            *out.entry((Level::Esp, Tier::Ok)).or_default() += 1;
        }
    }
    out
}
