//! What a window of counts says about a sender: weights, anti-abuse caps,
//! Wilson bounds, and the tier the evidence supports.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::wilson::{wilson_bounds, Z_95};
use crate::windows::Windows;
pub use ricochet_kafka::{ComplaintCode, Level, Tier, UnknownTier};

/// The lower Wilson bound at or above which a key is at least each tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Default 0.10 %: Gmail's "keep below" line and Amazon SES's review level.
    pub warning: f64,
    /// Default 0.30 %: Gmail's "never reach" line.
    pub throttle: f64,
    /// Default 0.50 %: the rate at which Amazon SES pauses sending.
    pub suspend: f64,
    /// Default 1.0 %: twice the SES pause rate; sustained, this is no accident.
    pub exclude: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warning: 0.001,
            throttle: 0.003,
            suspend: 0.005,
            exclude: 0.01,
        }
    }
}

/// Every number scoring uses; all of it is configuration (the policy file,
/// [`crate::policy_file`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The four windows every key is scored over.
    pub windows: Windows,
    /// Tier thresholds of every level without its own.
    pub thresholds: Thresholds,
    /// Levels with thresholds of their own.
    pub levels: BTreeMap<Level, Thresholds>,
    /// Below this many delivered messages a window is "insufficient data", never 0 %.
    pub min_delivered: u64,
    /// Weight of each complaint code; `not-spam` is negative (it offsets).
    pub weights: BTreeMap<ComplaintCode, f64>,
    /// Most complaints one reporter pseudonym adds to one key's window.
    pub max_per_reporter: u64,
    /// Largest share of a key's weighted complaints one provider may supply
    /// (of those that count), applied when at least two providers delivered
    /// the key's mail; 1 turns the cap off.
    pub max_provider_share: f64,
    /// Days a key must stay below its tier's threshold before the tier falls.
    pub cool_down_days: i64,
    /// A campaign with at least this many complaints in the last hour...
    pub burst_min_complaints: u64,
    /// ...making up at least this share of its sender's complaints in that hour
    /// is flagged as a burst (evidence and metrics; a flag, not a penalty).
    pub burst_share: f64,
}

impl Default for Policy {
    fn default() -> Self {
        let weights = BTreeMap::from([
            (ComplaintCode::Unwanted, 1.0),
            (ComplaintCode::PolicyViolation, 1.0),
            (ComplaintCode::UnsubscribeIgnored, 1.5),
            (ComplaintCode::Misrepresented, 3.0),
            (ComplaintCode::Phishing, 5.0),
            (ComplaintCode::NotSpam, -1.0),
        ]);
        Policy {
            windows: Windows::default(),
            thresholds: Thresholds::default(),
            levels: BTreeMap::new(),
            min_delivered: 1_000,
            weights,
            max_per_reporter: 3,
            max_provider_share: 0.75,
            cool_down_days: 7,
            burst_min_complaints: 50,
            burst_share: 0.5,
        }
    }
}

impl Policy {
    /// The policy as it applies at `level`: that level's thresholds in force.
    pub fn for_level(&self, level: Level) -> Policy {
        Policy {
            thresholds: self.levels.get(&level).copied().unwrap_or(self.thresholds),
            ..self.clone()
        }
    }

    /// The threshold of `tier` (0 for `ok`).
    pub fn threshold(&self, tier: Tier) -> f64 {
        let t = &self.thresholds;
        match tier {
            Tier::Ok => 0.0,
            Tier::Warning => t.warning,
            Tier::Throttle => t.throttle,
            Tier::Suspend => t.suspend,
            Tier::Exclude => t.exclude,
        }
    }

    /// The most severe tier whose threshold `lower_bound` reaches.
    pub fn tier_for(&self, lower_bound: f64) -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| lower_bound >= self.threshold(*t))
            .unwrap_or(Tier::Ok)
    }

    /// The weight of a code (a code the policy leaves out weighs 1).
    pub fn weight(&self, code: ComplaintCode) -> f64 {
        self.weights.get(&code).copied().unwrap_or(1.0)
    }

    /// One sentence on how a tier is decided under this policy at `level`,
    /// with the numbers in force (API explanations).
    pub fn explain(&self, level: Level) -> String {
        let t = self.for_level(level).thresholds;
        let pct = |v: f64| format!("{:.2} %", v * 100.0);
        format!(
            "the most severe tier whose threshold the lower Wilson bound (z = 1.96) of the weighted complaint rate reaches in any window ({}) with at least {} delivered messages (warning {}, throttle {}, suspend {}, exclude {}); a tier falls only after {} consecutive days below it",
            self.windows.names(),
            self.min_delivered,
            pct(t.warning),
            pct(t.throttle),
            pct(t.suspend),
            pct(t.exclude),
            self.cool_down_days
        )
    }
}

/// A provider or complaint-code name, shared (not copied) by every window
/// that mentions it.
pub type Name = Arc<str>;

/// Distinct-token counts for one sender in one window. Few providers and
/// codes appear per sender, so short vectors beat maps here (a full rescore
/// builds millions of these).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowCounts {
    /// Messages delivered (the denominator).
    pub delivered: u64,
    /// How many providers delivered some of them (the provider-share cap
    /// applies from two on).
    pub delivering_providers: u32,
    /// Complaints per (code, provider).
    pub complaints: Vec<ComplaintCount>,
    /// Reporter pseudonyms above the per-reporter cap, and only those.
    pub heavy_reporters: Vec<HeavyReporter>,
}

impl WindowCounts {
    /// Distinct complaint tokens, of every code.
    pub fn complaints(&self) -> u64 {
        self.complaints.iter().map(|c| c.complaints).sum()
    }

    /// Complaints per code, in code order.
    pub fn by_code(&self) -> Vec<(&str, u64)> {
        tally(
            self.complaints
                .iter()
                .map(|c| (c.code.as_str(), c.complaints)),
        )
    }

    /// Complaints per provider, in provider order.
    pub fn by_provider(&self) -> Vec<(&str, u64)> {
        tally(self.complaints.iter().map(|c| (&*c.provider, c.complaints)))
    }
}

/// Sums the counts of equal names, sorted by name.
fn tally<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> Vec<(&'a str, u64)> {
    let mut out: Vec<(&str, u64)> = vec![];
    for (name, n) in counts {
        match out.iter_mut().find(|(m, _)| *m == name) {
            Some((_, total)) => *total += n,
            None => out.push((name, n)),
        }
    }
    out.sort_unstable();
    out
}

/// Complaints of one code through one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplaintCount {
    /// Complaint code.
    pub code: ComplaintCode,
    /// Provider that submitted them.
    pub provider: Name,
    /// Distinct tokens.
    pub complaints: u64,
}

/// One reporter pseudonym's complaints against one sender, per code.
#[derive(Debug, Clone, PartialEq)]
pub struct HeavyReporter {
    /// Provider that vouches for the pseudonym.
    pub provider: Name,
    /// The pseudonym.
    pub reporter: String,
    /// Distinct tokens per code.
    pub by_code: Vec<(ComplaintCode, u64)>,
}

/// What one window says, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Delivered messages.
    pub delivered: u64,
    /// Weighted complaints after caps and offsets (never below 0).
    pub weighted: f64,
    /// Weighted complaints removed by the per-reporter cap.
    pub capped_reporter: f64,
    /// Weighted complaints removed by the provider-share cap.
    pub capped_provider: f64,
    /// weighted / delivered.
    pub rate: f64,
    /// Wilson bounds of the rate (z = 1.96).
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// `None` when there is too little volume to say anything.
    pub tier: Option<Tier>,
}

/// Adds `weight` to `provider`'s entry.
fn add<'a>(by_provider: &mut Vec<(&'a str, f64)>, provider: &'a str, weight: f64) {
    match by_provider.iter_mut().find(|(p, _)| *p == provider) {
        Some((_, v)) => *v += weight,
        None => by_provider.push((provider, weight)),
    }
}

/// Assesses one window of counts under `policy`.
pub fn assess(counts: &WindowCounts, policy: &Policy) -> Assessment {
    // Weighted complaints per provider, offsets included.
    let mut by_provider: Vec<(&str, f64)> = Vec::with_capacity(4);
    for c in &counts.complaints {
        add(
            &mut by_provider,
            &c.provider,
            policy.weight(c.code) * c.complaints as f64,
        );
    }
    // One reporter adds at most max_per_reporter complaints: the excess is
    // removed at the reporter's own average weight, from its provider, before
    // the provider-share cap looks at the providers.
    let mut capped_reporter = 0.0;
    for r in &counts.heavy_reporters {
        let n: u64 = r.by_code.iter().map(|(_, k)| k).sum();
        if n <= policy.max_per_reporter {
            continue;
        }
        let weight: f64 = r
            .by_code
            .iter()
            .map(|(code, k)| policy.weight(*code) * *k as f64)
            .sum();
        let excess = (weight * (n - policy.max_per_reporter) as f64 / n as f64).max(0.0);
        add(&mut by_provider, &r.provider, -excess);
        capped_reporter += excess;
    }
    let positive: f64 = by_provider.iter().map(|(_, v)| v.max(0.0)).sum();
    let mut capped_provider = 0.0;
    if counts.delivering_providers >= 2 && positive > 0.0 && policy.max_provider_share < 1.0 {
        // A provider keeps at most `share` of what remains: at most
        // share / (1 - share) times what the others supply. Alone among
        // several delivering providers, its complaints count for nothing:
        // one provider (or one provider's accounts) cannot sink a key alone.
        // From a share of 0.5 up, at most one provider can be over.
        let ratio = policy.max_provider_share / (1.0 - policy.max_provider_share);
        for (_, v) in &by_provider {
            let own = v.max(0.0);
            capped_provider += (own - ratio * (positive - own)).max(0.0);
        }
    }
    let total = positive - capped_provider;
    let offsets: f64 = by_provider
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| *v < 0.0)
        .sum();
    let weighted = (total + offsets).max(0.0);
    let delivered = counts.delivered;
    let (lower, upper) = wilson_bounds(weighted, delivered as f64, Z_95);
    let rate = if delivered == 0 {
        0.0
    } else {
        weighted / delivered as f64
    };
    let tier = (delivered >= policy.min_delivered).then(|| policy.tier_for(lower));
    Assessment {
        delivered,
        weighted,
        capped_reporter,
        capped_provider,
        rate,
        lower,
        upper,
        tier,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn counts(delivered: u64, complaints: &[(&str, &str, u64)]) -> WindowCounts {
        WindowCounts {
            delivered,
            delivering_providers: 1,
            complaints: complaints
                .iter()
                .map(|(c, p, n)| ComplaintCount {
                    code: c.parse().unwrap(),
                    provider: (*p).into(),
                    complaints: *n,
                })
                .collect(),
            heavy_reporters: vec![],
        }
    }

    fn bomber(by_code: &[(&str, u64)]) -> HeavyReporter {
        HeavyReporter {
            provider: "p1".into(),
            reporter: "bomber".into(),
            by_code: by_code
                .iter()
                .map(|(c, n)| (c.parse().unwrap(), *n))
                .collect(),
        }
    }

    #[test]
    fn complaints_add_up_by_code_and_by_provider() {
        let c = counts(
            10_000,
            &[
                ("unwanted", "p2", 4),
                ("phishing", "p1", 1),
                ("unwanted", "p1", 2),
            ],
        );
        assert_eq!(c.complaints(), 7);
        assert_eq!(c.by_code(), vec![("phishing", 1), ("unwanted", 6)]);
        assert_eq!(c.by_provider(), vec![("p1", 3), ("p2", 4)]);
    }

    #[test]
    fn too_little_volume_is_insufficient_data_not_zero() {
        let a = assess(&counts(999, &[]), &Policy::default());
        assert_eq!(a.tier, None);
        let a = assess(&counts(1000, &[]), &Policy::default());
        assert_eq!(a.tier, Some(Tier::Ok));
    }

    #[test]
    fn thresholds_apply_to_the_lower_bound() {
        let p = Policy::default();
        // 0.4 % observed on 10,000: lower bound ≈ 0.29 %, so warning, not throttle.
        let a = assess(&counts(10_000, &[("unwanted", "p1", 40)]), &p);
        assert!(
            a.rate > p.thresholds.throttle && a.lower < p.thresholds.throttle,
            "{a:?}"
        );
        assert_eq!(a.tier, Some(Tier::Warning));
        // The same rate on 1,000,000 messages is certain enough for throttle.
        let a = assess(&counts(1_000_000, &[("unwanted", "p1", 4_000)]), &p);
        assert_eq!(a.tier, Some(Tier::Throttle));
    }

    #[test]
    fn misrepresentation_and_phishing_weigh_more_and_not_spam_offsets() {
        let p = Policy::default();
        let plain = assess(&counts(100_000, &[("unwanted", "p1", 100)]), &p);
        let lying = assess(&counts(100_000, &[("misrepresented", "p1", 100)]), &p);
        let phish = assess(&counts(100_000, &[("phishing", "p1", 100)]), &p);
        assert!(plain.weighted < lying.weighted && lying.weighted < phish.weighted);
        let offset = assess(
            &counts(100_000, &[("unwanted", "p1", 100), ("not-spam", "p1", 40)]),
            &p,
        );
        assert_eq!(offset.weighted, 60.0);
        let only_positive = assess(&counts(100_000, &[("not-spam", "p1", 40)]), &p);
        assert_eq!(only_positive.weighted, 0.0, "never below zero");
    }

    #[test]
    fn one_reporter_counts_at_most_the_cap() {
        let p = Policy::default();
        let mut c = counts(10_000, &[("unwanted", "p1", 50)]);
        c.heavy_reporters.push(bomber(&[("unwanted", 45)]));
        let a = assess(&c, &p);
        assert_eq!(a.capped_reporter, 42.0);
        assert_eq!(a.weighted, 8.0);
        // The excess goes at the reporter's own weight: 45 phishing reports
        // (weight 5) count as 3, not as 45 * 5 - 42.
        let mut c = counts(10_000, &[("phishing", "p1", 45), ("unwanted", "p1", 5)]);
        c.heavy_reporters.push(bomber(&[("phishing", 45)]));
        let a = assess(&c, &p);
        assert_eq!(a.capped_reporter, 42.0 * 5.0);
        assert_eq!(a.weighted, 3.0 * 5.0 + 5.0);
    }

    #[test]
    fn one_provider_supplies_at_most_its_share_when_others_deliver_too() {
        let p = Policy::default();
        let mut c = counts(10_000, &[("unwanted", "p1", 90), ("unwanted", "p2", 10)]);
        c.delivering_providers = 2;
        let a = assess(&c, &p);
        // p1 keeps 30: 75 % of the 40 that remain.
        assert_eq!(a.capped_provider, 60.0);
        assert_eq!(a.weighted, 40.0);
        // Alone among delivering providers, a provider's complaints count for nothing.
        let mut c = counts(10_000, &[("phishing", "p1", 30)]);
        c.delivering_providers = 3;
        assert_eq!(assess(&c, &p).weighted, 0.0);
        // Complaints spread like the mail are not touched.
        let mut c = counts(
            10_000,
            &[
                ("unwanted", "p1", 50),
                ("unwanted", "p2", 30),
                ("unwanted", "p3", 20),
            ],
        );
        c.delivering_providers = 3;
        assert_eq!(assess(&c, &p).capped_provider, 0.0);
        // Alone, a provider is not capped: there is nobody to compare with.
        let a = assess(&counts(10_000, &[("unwanted", "p1", 90)]), &p);
        assert_eq!(a.capped_provider, 0.0);
    }

    proptest! {
        #[test]
        fn more_complaints_never_lower_the_tier(delivered in 1_000u64..2_000_000, n in 0u64..50_000, extra in 1u64..5_000, code in prop::sample::select(vec!["unwanted", "misrepresented", "phishing", "policy-violation"])) {
            let p = Policy::default();
            let a = assess(&counts(delivered, &[(code, "p1", n)]), &p);
            let b = assess(&counts(delivered, &[(code, "p1", n + extra)]), &p);
            prop_assert!(b.tier >= a.tier, "{:?} -> {:?}", a.tier, b.tier);
            prop_assert!(b.lower >= a.lower);
        }

        /// What lets scoring skip the reporter lookup for senders whose
        /// uncapped counts support no tier: the cap never raises anything.
        #[test]
        fn the_reporter_cap_never_raises_the_weight(
            delivered in 1_000u64..200_000,
            p1 in 0u64..2_000,
            p2 in 0u64..2_000,
            offsets in 0u64..500,
            two_providers: bool,
            heavy in prop::collection::vec((prop::bool::ANY, 4u64..200, prop::sample::select(vec!["unwanted", "phishing", "not-spam"])), 0..4),
        ) {
            let p = Policy::default();
            let mut c = counts(delivered, &[("unwanted", "p1", p1), ("phishing", "p2", p2), ("not-spam", "p1", offsets)]);
            c.delivering_providers = if two_providers { 2 } else { 1 };
            let uncapped = assess(&c, &p);
            for (i, (second, n, code)) in heavy.into_iter().enumerate() {
                c.heavy_reporters.push(HeavyReporter {
                    provider: if second { "p2".into() } else { "p1".into() },
                    reporter: format!("r{i}"),
                    by_code: vec![(code.parse().unwrap(), n)],
                });
            }
            let capped = assess(&c, &p);
            prop_assert!(capped.weighted <= uncapped.weighted, "{uncapped:?} -> {capped:?}");
            prop_assert!(capped.tier <= uncapped.tier);
        }
    }
}
