//! The simulation's outcome against its ground truth: which bad senders
//! were penalized and how fast, whether a good one was, whether the bombing
//! worked, and whether the pipeline itself misbehaved.

use std::collections::{BTreeMap, HashMap};

use ricochet_kafka::ComplaintCode;
use ricochet_scoring::Policy;
use serde_json::Value;

use super::world::{
    self, Behaviour, Sender, World, ATTACKER_ACCOUNTS, ATTACK_HOURS, ATTACK_PER_HOUR, PROVIDERS,
};
use super::{levels, Reports, Seen, Tally};

/// Per behaviour: senders, penalized, simulated hours from onset to penalty.
type ByKind = BTreeMap<Behaviour, (usize, usize, Vec<u32>)>;

/// Prints the outcome against the ground truth; false if the pipeline
/// itself misbehaved (a valid complaint refused, a forged one accepted, no
/// report).
pub(super) fn summarize(
    world: &World,
    tally: &Tally,
    reports: &Reports,
    target_rep: &Value,
) -> bool {
    let items = &reports.items;
    // The tier in force at the end: the last change per sender.
    let mut final_tier: HashMap<&str, &str> = HashMap::new();
    for item in items.iter().flatten().filter(|i| i["level"] == "sender") {
        final_tier.insert(
            item["sender"].as_str().unwrap_or(""),
            item["to_tier"].as_str().unwrap_or(""),
        );
    }
    println!();
    println!("Ground truth vs. what the ESPs were told");
    println!(
        "  complaints submitted: {} valid ({} accepted), {} forged ({} refused); {} delivery counts",
        tally.complaints, tally.accepted, tally.forged, tally.forged_rejected, tally.deliveries
    );
    senders(world, &final_tier, &reports.seen);
    bombing(world, tally, &final_tier, target_rep);
    let mut ok = pipeline_ok(tally, items);
    let penalized = |id: &str| final_tier.get(id).is_some_and(|t| *t != "ok");
    ok &= levels::summarize(world, &tally.truth, items, &reports.groups, &penalized);
    ok
}

/// Bad senders penalized per behaviour and how fast; good senders penalized.
fn senders(world: &World, final_tier: &HashMap<&str, &str>, seen: &Seen) {
    let mut by_kind = ByKind::new();
    let mut good_penalized: Vec<&Sender> = vec![];
    for s in &world.senders {
        let penalized = final_tier.get(s.id.as_str()).is_some_and(|t| *t != "ok");
        let e = by_kind.entry(s.behaviour).or_default();
        e.0 += 1;
        if penalized {
            e.1 += 1;
            if let Some((h, _)) = seen.get(&s.id) {
                e.2.push(h.saturating_sub(s.onset));
            }
        }
        if penalized && s.behaviour == Behaviour::Good {
            good_penalized.push(s);
        }
    }
    print_bad(&by_kind);
    println!(
        "  good senders penalized: {} of {}{}",
        good_penalized.len(),
        by_kind.get(&Behaviour::Good).map_or(0, |v| v.0),
        good_penalized
            .iter()
            .take(5)
            .map(|s| format!(
                " {} ({}, true rate {:.3} %)",
                s.id,
                final_tier[s.id.as_str()],
                s.base_rate * 100.0
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
}

fn print_bad(by_kind: &ByKind) {
    for (kind, (n, penalized, delays)) in by_kind.iter().filter(|(k, _)| k.is_bad()) {
        let mut d = delays.clone();
        d.sort_unstable();
        let hours = |h: Option<&u32>| h.map_or("-".to_string(), |h| format!("{h} h"));
        let (median, max) = (hours(d.get(d.len() / 2)), hours(d.last()));
        println!(
            "  bad senders penalized, {:<16} {penalized:>4} of {n:<4} (simulated time from onset to penalty: median {median}, max {max})",
            format!("{}:", kind.as_str())
        );
    }
    let bad = by_kind.iter().filter(|(k, _)| k.is_bad()).map(|(_, v)| v);
    let (total, hit) = bad.fold((0, 0), |(t, h), v| (t + v.0, h + v.1));
    println!("  bad senders penalized in all: {hit} of {total}");
}

/// Whether the complaint bombing of the good sender worked.
fn bombing(world: &World, tally: &Tally, final_tier: &HashMap<&str, &str>, target_rep: &Value) {
    let target = &world.senders[world.bombed];
    let tier = final_tier.get(target.id.as_str()).copied().unwrap_or("ok");
    let weighted_24h = target_rep["windows"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["window"] == "24h"))
        .map_or(f64::NAN, |w| {
            w["weighted_complaints"].as_f64().unwrap_or(f64::NAN)
        });
    println!(
        "  complaint bombing of {} ({} phishing complaints accepted from {ATTACKER_ACCOUNTS} accounts at {} over {ATTACK_HOURS} h, {ATTACK_PER_HOUR}/h): {} (tier {tier}; weighted complaints counted in 24 h: {weighted_24h:.0}, the attack alone would weigh {:.0} uncapped)",
        target.id,
        tally.attack_accepted,
        PROVIDERS[world::ATTACKER_PROVIDER].id,
        if tier == "ok" { "did not work" } else { "WORKED" },
        tally.attack_accepted as f64 * Policy::default().weight(ComplaintCode::Phishing)
    );
}

/// False, with the problem printed, if a valid complaint was refused, a
/// forged one accepted, or no ESP heard of any tier change.
fn pipeline_ok(tally: &Tally, items: &[Vec<Value>]) -> bool {
    let mut ok = true;
    if !tally.rejected_legit.is_empty() {
        println!(
            "  PROBLEM: valid complaints were refused: {:?}",
            tally.rejected_legit
        );
        ok = false;
    }
    if tally.forged_rejected != tally.forged {
        println!(
            "  PROBLEM: {} forged complaints were accepted",
            tally.forged - tally.forged_rejected
        );
        ok = false;
    }
    if items.iter().all(|i| i.is_empty()) {
        println!("  PROBLEM: no ESP received any tier change");
        ok = false;
    }
    ok
}
