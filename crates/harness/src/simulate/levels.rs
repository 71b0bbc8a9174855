//! The simulation's verdict on the levels above the sender: whether the
//! spammers that rename themselves were caught (at which level, how many
//! simulated hours after they started), and that no clean ESP and no good
//! sender's campaign was penalized.

use std::collections::{BTreeMap, HashMap};

use ricochet_kafka::ComplaintCode;
use ricochet_scoring::Policy;
use serde_json::Value;

use super::world::{
    Behaviour, World, ESPS, LAUNDERER_CAMPAIGN, LAUNDERER_ESP, MOVER_DOMAIN, MOVER_ESPS,
    ROTATOR_ESP,
};

/// A tier change above the sender: (ESP index, level, key).
pub type GroupKey = (usize, String, String);

/// First change seen per group: (simulated hour it was seen after, tier).
pub type GroupsSeen = HashMap<GroupKey, (u32, String)>;

/// What each ESP's book truly drew: delivered messages and weighted
/// complaints (the attacker's left out), from the generated traffic.
#[derive(Default)]
pub struct Truth {
    /// Per ESP: (delivered, weighted complaints).
    pub books: Vec<(u64, f64)>,
}

impl Truth {
    /// Adds an hour's delivered count of a sender of `esp`.
    pub fn delivered(&mut self, esp: usize, n: u64) {
        self.book(esp).0 += n;
    }

    /// Adds a complaint of `code` about a sender of `esp`.
    pub fn complaint(&mut self, esp: usize, code: ComplaintCode, policy: &Policy) {
        self.book(esp).1 += policy.weight(code);
    }

    fn book(&mut self, esp: usize) -> &mut (u64, f64) {
        if self.books.len() < ESPS.len() {
            self.books.resize(ESPS.len(), (0, 0.0));
        }
        &mut self.books[esp]
    }
}

/// Records the group-level items of one ESP's report page.
pub fn record(seen: &mut GroupsSeen, esp: usize, page: &[Value], hour: u32) {
    for item in page.iter().filter(|i| i["level"] != "sender") {
        let key = (
            esp,
            item["level"].as_str().unwrap_or("").to_string(),
            item["key"].as_str().unwrap_or("").to_string(),
        );
        let tier = item["to_tier"].as_str().unwrap_or("").to_string();
        seen.entry(key).or_insert((hour, tier));
    }
}

/// The tier in force at the end per group: the last change of each.
fn final_tiers(items: &[Vec<Value>]) -> BTreeMap<GroupKey, String> {
    let mut out = BTreeMap::new();
    for (esp, page) in items.iter().enumerate() {
        for item in page.iter().filter(|i| i["level"] != "sender") {
            let key = (
                esp,
                item["level"].as_str().unwrap_or("").to_string(),
                item["key"].as_str().unwrap_or("").to_string(),
            );
            out.insert(key, item["to_tier"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

/// One case's line: caught at `level` or not, and how fast.
fn caught(
    finals: &BTreeMap<GroupKey, String>,
    seen: &GroupsSeen,
    key: &GroupKey,
    onset: u32,
) -> Option<String> {
    let tier = finals.get(key).filter(|t| *t != "ok")?;
    let after = seen.get(key).map_or("-".to_string(), |(h, _)| {
        format!("{} h", h.saturating_sub(onset))
    });
    Some(format!(
        "caught at the {} level, tier {tier}, {after} after it started",
        key.1
    ))
}

/// Prints the levels' outcome; false if a renaming spammer went uncaught
/// or a clean ESP or a good sender's campaign was penalized.
pub fn summarize(
    world: &World,
    truth: &Truth,
    items: &[Vec<Value>],
    seen: &GroupsSeen,
    sender_penalized: &dyn Fn(&str) -> bool,
) -> bool {
    let finals = final_tiers(items);
    let ids = |b: Behaviour| world.senders.iter().filter(move |s| s.behaviour == b);
    let onset = ids(Behaviour::Launderer)
        .map(|s| s.onset)
        .min()
        .unwrap_or(0);
    println!("  levels above the sender (what renaming cannot escape):");
    let mut ok = true;
    let launderer = (
        LAUNDERER_ESP,
        "campaign".to_string(),
        LAUNDERER_CAMPAIGN.to_string(),
    );
    let alone = ids(Behaviour::Launderer)
        .chain(ids(Behaviour::Rotator))
        .filter(|s| sender_penalized(&s.id))
        .count();
    let verdict = caught(&finals, seen, &launderer, onset);
    println!(
        "    campaign launderer ({} ids of under 1,000 messages, campaign {LAUNDERER_CAMPAIGN} at {}): {}",
        ids(Behaviour::Launderer).count(),
        ESPS[LAUNDERER_ESP],
        verdict.as_deref().unwrap_or("NOT CAUGHT")
    );
    ok &= verdict.is_some();
    let rotator = (ROTATOR_ESP, "esp".to_string(), String::new());
    let verdict = caught(&finals, seen, &rotator, onset);
    println!(
        "    id and campaign rotator ({} ids, each with its own campaign, at {}): {}",
        ids(Behaviour::Rotator).count(),
        ESPS[ROTATOR_ESP],
        verdict.as_deref().unwrap_or("NOT CAUGHT")
    );
    ok &= verdict.is_some();
    ok &= mover(world, &finals, seen, onset);
    println!(
        "    their ids penalized on their own: {alone} (none has enough volume for a verdict)"
    );
    ok &= esp_books(truth, &finals);
    good_campaigns(world, &finals, sender_penalized);
    ok
}

/// The domain mover: caught at the domain level at the ESP it starts at,
/// and the ESP it moves to told the domain's tier as it arrives.
fn mover(
    world: &World,
    finals: &BTreeMap<GroupKey, String>,
    seen: &GroupsSeen,
    onset: u32,
) -> bool {
    let ids = world
        .senders
        .iter()
        .filter(|s| s.behaviour == Behaviour::Mover);
    let moved = ids
        .filter(|s| s.esp == MOVER_ESPS.1)
        .filter_map(|s| s.only_hour)
        .min()
        .unwrap_or(0);
    let at = |esp: usize| (esp, "domain".to_string(), MOVER_DOMAIN.to_string());
    let first = caught(finals, seen, &at(MOVER_ESPS.0), onset);
    let second = finals.get(&at(MOVER_ESPS.1)).filter(|t| *t != "ok");
    let told_after = seen
        .get(&at(MOVER_ESPS.1))
        .map_or("-".to_string(), |(h, _)| {
            format!("{} h", h.saturating_sub(moved))
        });
    println!(
        "    domain mover (From {MOVER_DOMAIN}, fresh ids and campaigns, {} then {} from hour {moved}): at {}: {}; at {}: {}",
        ESPS[MOVER_ESPS.0],
        ESPS[MOVER_ESPS.1],
        ESPS[MOVER_ESPS.0],
        first.as_deref().unwrap_or("NOT CAUGHT"),
        ESPS[MOVER_ESPS.1],
        second.map_or("NOT TOLD".to_string(), |t| format!("told the domain's tier {t} {told_after} after it arrived")),
    );
    first.is_some() && second.is_some()
}

/// ESP books: true rate against the ESP-level tier; a clean book (true
/// weighted rate at most half the warning line) must stay `ok`.
fn esp_books(truth: &Truth, finals: &BTreeMap<GroupKey, String>) -> bool {
    let warning = Policy::default().thresholds.warning;
    let mut ok = true;
    let (mut clean, mut clean_hit) = (0, 0);
    for (esp, (delivered, weighted)) in truth.books.iter().enumerate() {
        let rate = weighted.max(0.0) / (*delivered).max(1) as f64;
        let tier = finals
            .get(&(esp, "esp".to_string(), String::new()))
            .map_or("ok", String::as_str);
        let truth = match rate / warning {
            r if r <= 0.5 => "clean",
            r if r >= 1.5 => "dirty",
            _ => "near the warning line",
        };
        println!(
            "    {:<20} book: true weighted rate {:.3} % ({truth}) -> ESP level {tier}",
            ESPS[esp],
            rate * 100.0
        );
        if truth == "clean" {
            clean += 1;
            clean_hit += usize::from(tier != "ok");
        }
        if truth == "dirty" && tier == "ok" {
            println!("    PROBLEM: {}'s dirty book was not penalized", ESPS[esp]);
            ok = false;
        }
    }
    println!("    clean ESPs penalized at the ESP level: {clean_hit} of {clean}");
    ok && clean_hit == 0
}

/// Reports the campaigns of good senders penalized at the campaign level
/// (the bombed sender's among them if the attack worked there). Like good
/// senders penalized, a figure, not a failure: a short window of a good
/// sender can draw a burst by chance, and its campaign then does too.
fn good_campaigns(
    world: &World,
    finals: &BTreeMap<GroupKey, String>,
    sender_penalized: &dyn Fn(&str) -> bool,
) {
    let good: HashMap<(usize, &str), ()> = world
        .senders
        .iter()
        .filter(|s| matches!(s.behaviour, Behaviour::Good | Behaviour::Bombed))
        .map(|s| ((s.esp, s.id.as_str()), ()))
        .collect();
    let hit: Vec<&GroupKey> = finals
        .iter()
        .filter(|((esp, level, key), tier)| {
            // A good sender's campaigns are named `<sender>-c<n>`.
            let sender = key.rsplit_once("-c").map_or("", |(s, _)| s);
            level == "campaign" && *tier != "ok" && good.contains_key(&(*esp, sender))
        })
        .map(|(k, _)| k)
        .collect();
    let sender_of = |k: &str| k.rsplit_once("-c").map_or("", |(s, _)| s).to_string();
    let also = hit
        .iter()
        .filter(|(_, _, k)| sender_penalized(&sender_of(k)))
        .count();
    let bombed = &world.senders[world.bombed].id;
    let attack = hit.iter().any(|(_, _, k)| sender_of(k) == *bombed);
    println!(
        "    good senders' campaigns penalized at the campaign level: {} ({also} of their senders penalized too){}; the bombing {} at the campaign level",
        hit.len(),
        hit.iter()
            .take(3)
            .map(|(e, _, k)| format!(" {k} ({})", ESPS[*e]))
            .collect::<String>(),
        if attack { "WORKED" } else { "did not work" }
    );
}
