//! How the domain level reaches ESPs. A From domain is scored across every
//! ESP, but penalty chains are per ESP: a domain's tier goes into the chain
//! of each ESP that carries it (has its rows in some window). An ESP that
//! starts carrying a domain already penalized is told the tier in force
//! (rule `tier-in-force`), so a spammer that moves to a new ESP arrives with
//! its history; when the tier changes, every ESP told before is told again.

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Client;
use foldhash::HashMap;

use crate::chain::PenaltyEntry;
use crate::partition::Partition;
use crate::policy::{Policy, Tier};
use crate::store::domain_books::DecisionRow;
use crate::verdict::{evidence, Decision, Window};
use ricochet_kafka::Level;

/// The rule of a row that tells an ESP a domain's tier it did not know.
pub const TIER_IN_FORCE: &str = "tier-in-force";

/// Per domain, the tier each ESP was last told.
#[derive(Debug, Default)]
pub struct Told(HashMap<String, BTreeMap<String, Tier>>);

impl Told {
    /// Reads what the chains of the partition's ESPs told (a full run's start).
    pub async fn load(client: &Client, part: Partition) -> crate::error::Result<Told> {
        let mut told = Told::default();
        for (esp, domain, tier) in crate::store::penalties::domain_tiers_told(client, part).await? {
            told.0.entry(domain).or_default().insert(esp, tier);
        }
        Ok(told)
    }

    /// The rows this run's decision on `domain` writes: one per ESP whose
    /// last word differs from the tier in force, among its carriers (and,
    /// when the tier changed, every ESP told before).
    pub fn fan_out(
        &mut self,
        domain: &str,
        carriers: &BTreeSet<String>,
        d: &Decision,
        assessed: &[Window<'_>],
        (policy, now_ms): (&Policy, i64),
    ) -> Vec<PenaltyEntry> {
        let told = self.0.entry(domain.to_string()).or_default();
        let to = d.after.tier;
        let mut targets: BTreeSet<String> = carriers.clone();
        if d.change.is_some() {
            targets.extend(told.keys().cloned());
        }
        let (rule, evidence) = match &d.change {
            Some(c) => (c.rule.clone(), c.evidence.clone()),
            None => (
                TIER_IN_FORCE.to_string(),
                evidence(Level::Domain, assessed, None, policy, &[]),
            ),
        };
        let mut out = vec![];
        for esp in targets {
            let from = told.get(&esp).copied().unwrap_or(Tier::Ok);
            if from == to {
                continue;
            }
            told.insert(esp.clone(), to);
            out.push(PenaltyEntry {
                level: Level::Domain.as_str().into(),
                sender: domain.into(),
                at_ms: now_ms,
                from_tier: from.as_str().into(),
                to_tier: to.as_str().into(),
                rule: rule.clone(),
                evidence: evidence.clone(),
                ..crate::verdict::blank(&esp)
            });
        }
        out
    }

    /// Partitioned scoring: the rows telling this instance's ESPs the tier
    /// the owner of the domain level put `domain` in (`decision`): every
    /// ESP here that carries it or was told of it before, whose last word
    /// differs. One told before hears the change's rule; a new carrier,
    /// [`TIER_IN_FORCE`].
    pub fn tell(
        &mut self,
        decision: &DecisionRow,
        tier: Tier,
        carriers: &BTreeSet<String>,
        now_ms: i64,
    ) -> Vec<PenaltyEntry> {
        let told = self.0.entry(decision.domain.clone()).or_default();
        let targets: BTreeSet<String> = carriers.iter().chain(told.keys()).cloned().collect();
        let mut out = vec![];
        for esp in targets {
            let before = told.get(&esp).copied();
            let from = before.unwrap_or(Tier::Ok);
            if from == tier {
                continue;
            }
            told.insert(esp.clone(), tier);
            let rule = match before {
                Some(_) => decision.rule.clone(),
                None => TIER_IN_FORCE.to_string(),
            };
            out.push(PenaltyEntry {
                level: Level::Domain.as_str().into(),
                sender: decision.domain.clone(),
                at_ms: now_ms,
                from_tier: from.as_str().into(),
                to_tier: tier.as_str().into(),
                rule,
                evidence: decision.evidence.clone(),
                ..crate::verdict::blank(&esp)
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hysteresis::Standing;

    fn decision(tier: Tier, changed: bool) -> Decision {
        Decision {
            after: Standing {
                tier,
                below_since: None,
            },
            change: changed.then(|| PenaltyEntry {
                rule: "rise-on-lower-bound".into(),
                evidence: "{}".into(),
                ..crate::verdict::blank("")
            }),
            due_ms: None,
        }
    }

    #[test]
    fn an_instance_tells_its_own_carriers_what_the_owner_decided() {
        let mut told = Told::default();
        let decided = |tier: &str| DecisionRow {
            domain: "spam.example".into(),
            tier: tier.into(),
            rule: "rise-on-lower-bound".into(),
            evidence: "{}".into(),
            at_ms: 1,
        };
        let a = BTreeSet::from(["esp-a".to_string()]);
        let rows = told.tell(&decided("exclude"), Tier::Exclude, &a, 5);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].to_tier.as_str(), rows[0].rule.as_str()),
            ("exclude", TIER_IN_FORCE)
        );
        // Read again next run: nothing new to tell.
        assert!(told
            .tell(&decided("exclude"), Tier::Exclude, &a, 6)
            .is_empty());
        // The tier falls while esp-a no longer carries the domain: it hears the change.
        let rows = told.tell(&decided("ok"), Tier::Ok, &BTreeSet::new(), 7);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].esp.as_str(),
                rows[0].from_tier.as_str(),
                rows[0].rule.as_str()
            ),
            ("esp-a", "exclude", "rise-on-lower-bound")
        );
    }

    #[test]
    fn carriers_are_told_once_and_a_new_carrier_learns_the_tier_in_force() {
        let mut told = Told::default();
        let p = Policy::default();
        let a = BTreeSet::from(["esp-a".to_string()]);
        let rows = told.fan_out(
            "spam.example",
            &a,
            &decision(Tier::Exclude, true),
            &[],
            (&p, 1),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].esp.as_str(), rows[0].to_tier.as_str()),
            ("esp-a", "exclude")
        );
        // Nothing new: nothing written.
        let rows = told.fan_out(
            "spam.example",
            &a,
            &decision(Tier::Exclude, false),
            &[],
            (&p, 2),
        );
        assert!(rows.is_empty());
        // The domain moves to esp-b: b learns the tier in force, a is not told again.
        let ab = BTreeSet::from(["esp-a".to_string(), "esp-b".to_string()]);
        let rows = told.fan_out(
            "spam.example",
            &ab,
            &decision(Tier::Exclude, false),
            &[],
            (&p, 3),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].esp.as_str(),
                rows[0].from_tier.as_str(),
                rows[0].rule.as_str()
            ),
            ("esp-b", "ok", TIER_IN_FORCE)
        );
        // The tier falls: both are told, even esp-a that no longer carries it.
        let b = BTreeSet::from(["esp-b".to_string()]);
        let rows = told.fan_out("spam.example", &b, &decision(Tier::Ok, true), &[], (&p, 4));
        let esps: Vec<&str> = rows.iter().map(|r| r.esp.as_str()).collect();
        assert_eq!(esps, ["esp-a", "esp-b"]);
    }
}
