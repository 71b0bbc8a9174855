//! Tier changes over time: a tier rises as soon as the evidence supports it,
//! and falls only after the sender stayed below its threshold for the whole
//! cool-down (default 7 days), so a sender cannot flap out of a penalty by
//! pausing for a day.

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, Tier};
pub use ricochet_kafka::Rule;

/// A sender's standing between two scoring runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The tier in force.
    pub tier: Tier,
    /// Since when (Unix seconds) the evidence has been below `tier`, if it is.
    pub below_since: Option<i64>,
}

impl Default for Standing {
    fn default() -> Self {
        Standing {
            tier: Tier::Ok,
            below_since: None,
        }
    }
}

/// Applies one scoring run's verdict (`None`: insufficient data) at time `now`.
/// Returns the new standing and, if the tier changed, the rule that fired.
pub fn step(
    standing: Standing,
    evidence: Option<Tier>,
    now: i64,
    policy: &Policy,
) -> (Standing, Option<Rule>) {
    let Some(deserved) = evidence else {
        // No evidence either way: keep the tier and any running cool-down.
        return (standing, None);
    };
    if deserved > standing.tier {
        return (
            Standing {
                tier: deserved,
                below_since: None,
            },
            Some(Rule::RiseOnLowerBound),
        );
    }
    if deserved == standing.tier {
        return (
            Standing {
                tier: deserved,
                below_since: None,
            },
            None,
        );
    }
    let since = standing.below_since.unwrap_or(now);
    if now - since >= policy.cool_down_days * 86_400 {
        (
            Standing {
                tier: deserved,
                below_since: None,
            },
            Some(Rule::FallAfterCoolDown),
        )
    } else {
        (
            Standing {
                tier: standing.tier,
                below_since: Some(since),
            },
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn run(seq: &[(i64, Option<Tier>)]) -> Vec<(Tier, Option<Rule>)> {
        let p = Policy::default();
        let mut s = Standing::default();
        seq.iter()
            .map(|(day, ev)| {
                let (next, rule) = step(s, *ev, day * DAY, &p);
                s = next;
                (s.tier, rule)
            })
            .collect()
    }

    #[test]
    fn rises_at_once_and_falls_only_after_seven_days_below() {
        use Tier::*;
        let out = run(&[
            (0, Some(Throttle)),
            (1, Some(Ok)),
            (5, Some(Ok)),
            (7, Some(Ok)),
            (8, Some(Ok)),
        ]);
        assert_eq!(out[0], (Throttle, Some(Rule::RiseOnLowerBound)));
        assert_eq!(out[1].0, Throttle);
        assert_eq!(out[2].0, Throttle);
        assert_eq!(out[3].0, Throttle, "six days below is not seven");
        assert_eq!(out[4], (Ok, Some(Rule::FallAfterCoolDown)));
    }

    #[test]
    fn a_relapse_restarts_the_cool_down() {
        use Tier::*;
        let out = run(&[
            (0, Some(Suspend)),
            (1, Some(Ok)),
            (4, Some(Suspend)),
            (5, Some(Ok)),
            (11, Some(Ok)),
            (12, Some(Ok)),
        ]);
        assert_eq!(out[4].0, Suspend, "only six days since the relapse");
        assert_eq!(out[5], (Ok, Some(Rule::FallAfterCoolDown)));
    }

    #[test]
    fn insufficient_data_changes_nothing() {
        use Tier::*;
        let out = run(&[(0, Some(Warning)), (1, Some(Ok)), (3, None), (8, Some(Ok))]);
        assert_eq!(out[2], (Warning, None));
        assert_eq!(
            out[3],
            (Ok, Some(Rule::FallAfterCoolDown)),
            "the cool-down kept running"
        );
    }
}
