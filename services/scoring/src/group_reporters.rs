//! The reporters over the cap at the levels above the sender: a reporter
//! under the cap at each of 40 sender ids may be far over it at their
//! campaign. The groups' counts themselves come from [`crate::books`]; only
//! this lookup reads their rows, and only for groups whose counts without
//! the cap reach a tier.

use foldhash::HashMap;

use clickhouse::Client;

use crate::counts::SenderKey;
use crate::level::Level;
use crate::policy::{HeavyReporter, Policy};

/// Table listing the groups whose reporters a run counts.
pub const GROUP_SUSPECTS: &str = "scoring_group_suspects";

/// A level above the sender in SQL: its key expression and which rows carry a key.
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

/// The ESP level, whose key is empty.
pub const ESP: GroupLevel = GroupLevel {
    level: Level::Esp,
    key: "''",
    carried: "1",
    across_esps: false,
};

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
