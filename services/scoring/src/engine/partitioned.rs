//! What a run of a partitioned instance adds (see [`crate::partition`]):
//! it publishes its shares of the domains whose books changed, the owner
//! of the domain level sums every instance's shares into the domains'
//! counts, and each instance tells its own ESPs the domain tiers decided.

use std::collections::BTreeSet;

use clickhouse::Client;
use foldhash::{HashMap, HashSet};

use crate::books::{DomainShare, GroupKey};
use crate::chain::PenaltyEntry;
use crate::counts::SenderCounts;
use crate::groups::GroupMemory;
use crate::partition::Partition;
use crate::policy::Name;
use crate::store::domain_books::{self, DecisionRow};
use ricochet_kafka::Level;

/// Writes this instance's shares of the domains in `changed` (a full run:
/// of every domain in its books, and an empty share of those it published
/// before and no longer carries).
pub(super) async fn publish_shares(
    client: &Client,
    part: Partition,
    groups: &GroupMemory,
    changed: &HashSet<GroupKey>,
    full: bool,
) -> crate::error::Result<()> {
    let mut domains: BTreeSet<Name> = (changed.iter())
        .filter(|k| k.0 == Level::Domain)
        .map(|k| Name::from(k.2.as_str()))
        .collect();
    if full {
        domains.extend(groups.books.domains().cloned());
        let before = domain_books::published(client, part.index).await?;
        domains.extend(before.into_iter().map(|d| Name::from(d.as_str())));
    }
    let shares: Vec<(Name, DomainShare)> = domains
        .into_iter()
        .map(|d| {
            let share = groups.books.domain_share(&d, &groups.names);
            (d, share)
        })
        .collect();
    domain_books::publish(client, part.index, &shares).await
}

/// The owner of the domain level: the counts of the domains to score this
/// run, summed over every instance's share. `since_ms` (server clock):
/// the domains whose shares were written since, and those due; `None` (a
/// full run): every domain with a share or a standing.
pub(super) async fn domain_counts(
    client: &Client,
    groups: &GroupMemory,
    since_ms: Option<i64>,
    now_ms: i64,
) -> crate::error::Result<Vec<(GroupKey, SenderCounts)>> {
    let due: Vec<String> = (groups.due_ms.iter())
        .filter(|(k, at)| k.0 == Level::Domain && **at <= now_ms)
        .map(|(k, _)| k.2.clone())
        .collect();
    let mut shares = domain_books::shares(client, since_ms, due.clone()).await?;
    // Domains without a share still step (a cool-down may end).
    let mut stepping: Vec<String> = due;
    if since_ms.is_none() {
        stepping.extend(
            (groups.standing.keys())
                .filter(|k| k.0 == Level::Domain)
                .map(|k| k.2.clone()),
        );
    }
    for domain in stepping {
        shares.entry(domain).or_default();
    }
    Ok(shares
        .into_iter()
        .map(|(domain, shares)| {
            let key = (Level::Domain, String::new(), domain);
            (key, DomainShare::total(&shares))
        })
        .collect())
}

/// The rows telling this instance's ESPs the domain tiers in force: the
/// decisions stored, overlaid with those this run just made (the owner's,
/// not yet stored).
pub(super) async fn tell_own_esps(
    client: &Client,
    groups: &mut GroupMemory,
    decided_now: &[DecisionRow],
    now_ms: i64,
) -> crate::error::Result<Vec<(Level, PenaltyEntry)>> {
    let mut decisions: HashMap<String, DecisionRow> = domain_books::decisions(client)
        .await?
        .into_iter()
        .map(|d| (d.domain.clone(), d))
        .collect();
    for d in decided_now {
        decisions.insert(d.domain.clone(), d.clone());
    }
    let mut domains: Vec<&String> = decisions.keys().collect();
    domains.sort_unstable();
    let mut out = vec![];
    for domain in domains {
        let decision = &decisions[domain];
        let carriers = groups.books.carriers(domain);
        let rows = groups
            .told
            .tell(decision, decision.tier()?, &carriers, now_ms);
        out.extend(rows.into_iter().map(|e| (Level::Domain, e)));
    }
    Ok(out)
}
