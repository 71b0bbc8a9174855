//! The simulated world: providers, ESPs and senders with known behaviour
//! (the ground truth), and what each simulated hour produces. Pure and
//! seeded: the same seed gives the same world and the same traffic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use ricochet_kafka::ComplaintCode;

/// A mailbox provider: id, recipient domain, share of every sender's mail.
pub struct Provider {
    /// Participant id.
    pub id: &'static str,
    /// The one recipient domain it hosts here.
    pub domain: &'static str,
    /// Share of each sender's delivered mail.
    pub share: f64,
}

/// The providers of the world.
pub const PROVIDERS: [Provider; 3] = [
    Provider {
        id: "mail-north.example",
        domain: "north.example",
        share: 0.5,
    },
    Provider {
        id: "mail-south.example",
        domain: "south.example",
        share: 0.3,
    },
    Provider {
        id: "webmail.example",
        domain: "webmail.example",
        share: 0.2,
    },
];

/// The ESPs of the world. The first three share the ordinary senders (the
/// bad ones only alpha and bravo, so charlie's book is clean); the fourth is
/// small, and a spammer rotating ids and campaigns dirties its book.
pub const ESPS: [&str; 4] = [
    "esp-alpha.example",
    "esp-bravo.example",
    "esp-charlie.example",
    "esp-delta.example",
];

/// Index in [`ESPS`] of the ESP the campaign launderer sends through.
pub const LAUNDERER_ESP: usize = 1;
/// The one campaign every launderer id carries.
pub const LAUNDERER_CAMPAIGN: &str = "bravo-blast";
/// New launderer ids per simulated hour, each sending this many messages in
/// its one hour: under the 1,000-message minimum in every window.
pub const LAUNDERER_IDS_PER_HOUR: u32 = 3;
/// Messages per launderer or rotator id.
pub const ID_VOLUME: u64 = 900;
/// Index in [`ESPS`] of the rotator's ESP.
pub const ROTATOR_ESP: usize = 3;
/// New rotator ids (each with its own campaign) per simulated hour.
pub const ROTATOR_IDS_PER_HOUR: u32 = 10;
/// Good senders of the rotator's ESP.
pub const ROTATOR_ESP_GOOD: usize = 20;
/// The From domain of the spammer that moves between ESPs.
pub const MOVER_DOMAIN: &str = "deals-today.example";
/// The ESP the mover starts at, and the one it moves to halfway.
pub const MOVER_ESPS: (usize, usize) = (0, 2);
/// New mover ids per simulated hour.
pub const MOVER_IDS_PER_HOUR: u32 = 3;

/// Index in [`PROVIDERS`] of the provider the attacker's accounts are at.
pub const ATTACKER_PROVIDER: usize = 2;
/// Reporter pseudonyms the attacker's accounts have.
pub const ATTACKER_ACCOUNTS: usize = 6;
/// Complaints the attacker files per simulated hour while bombing.
pub const ATTACK_PER_HOUR: u64 = 40;
/// Simulated hours the bombing lasts.
pub const ATTACK_HOURS: u32 = 6;

/// What a sender really does (what scoring has to find out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// Wanted mail; complaints are background noise.
    Good,
    /// Turns spammy at its onset hour: unwanted bulk mail.
    Spammy,
    /// Claims its marketing is transactional from its onset hour; users say so.
    Misrepresenting,
    /// Sends phishing from its onset hour.
    Phishing,
    /// A good sender the attacker complaint-bombs.
    Bombed,
    /// One hour-long id of a spammer spreading its mail over fresh ids
    /// under one campaign (caught at the campaign level).
    Launderer,
    /// One hour-long id of a spammer rotating ids and campaigns (caught at
    /// the ESP level: its ESP's book turns dirty).
    Rotator,
    /// One hour-long id of a spammer whose mail comes From one domain and
    /// that moves from one ESP to another (caught at the domain level).
    Mover,
}

impl Behaviour {
    /// Whether scoring should penalize this sender.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Behaviour::Spammy | Behaviour::Misrepresenting | Behaviour::Phishing
        )
    }

    /// Display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Good => "good",
            Behaviour::Spammy => "spammy",
            Behaviour::Misrepresenting => "misrepresenting",
            Behaviour::Phishing => "phishing",
            Behaviour::Bombed => "bombed (good)",
            Behaviour::Launderer => "campaign launderer id",
            Behaviour::Rotator => "id and campaign rotator id",
            Behaviour::Mover => "domain mover id",
        }
    }

    /// Whether this is one id of a spammer that no sender-level verdict can
    /// catch (each id is under the minimum volume).
    pub fn is_rotating_id(self) -> bool {
        matches!(
            self,
            Behaviour::Launderer | Behaviour::Rotator | Behaviour::Mover
        )
    }
}

/// One sender and its ground truth.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Sender id (unique per ESP).
    pub id: String,
    /// Index in [`ESPS`].
    pub esp: usize,
    /// Messages delivered per simulated hour, all providers together.
    pub volume: u64,
    /// Complaint probability per delivered message before the onset.
    pub base_rate: f64,
    /// Complaint probability per message from the onset on.
    pub bad_rate: f64,
    /// What it really does.
    pub behaviour: Behaviour,
    /// Simulated hour from which it misbehaves (or is bombed).
    pub onset: u32,
    /// For a rotating id: the one hour it sends in.
    pub only_hour: Option<u32>,
    /// The campaign of all its mail, if one; else a new one every 6 hours.
    pub campaign: Option<String>,
    /// The From domain its tokens declare (`dom`), if any.
    pub from_domain: Option<&'static str>,
}

impl Sender {
    /// Messages delivered in simulated hour `h`, all providers together.
    pub fn volume_in(&self, h: u32) -> u64 {
        match self.only_hour {
            Some(only) if only != h => 0,
            _ => self.volume,
        }
    }

    /// The campaign its tokens and delivery counts carry in hour `h`.
    pub fn campaign_in(&self, h: u32) -> String {
        match &self.campaign {
            Some(c) => c.clone(),
            None => format!("{}-c{}", self.id, h / 6),
        }
    }

    /// Complaint probability in simulated hour `h`.
    pub fn rate(&self, h: u32) -> f64 {
        if self.behaviour.is_rotating_id() {
            return self.bad_rate;
        }
        if self.behaviour.is_bad() && h >= self.onset {
            self.bad_rate
        } else {
            self.base_rate
        }
    }

    /// The nature the sender's tokens claim.
    pub fn claimed_nature(&self) -> &'static str {
        match self.behaviour {
            Behaviour::Misrepresenting => "transactional",
            _ => "marketing",
        }
    }

    /// The complaint code a user picks in hour `h`.
    pub fn code(&self, h: u32, rng: &mut impl Rng) -> ComplaintCode {
        let roll: f64 = rng.random();
        let misbehaving = self.behaviour.is_bad() && h >= self.onset;
        match (self.behaviour, misbehaving) {
            (Behaviour::Misrepresenting, true) if roll < 0.7 => ComplaintCode::Misrepresented,
            (Behaviour::Phishing, true) if roll < 0.8 => ComplaintCode::Phishing,
            (Behaviour::Spammy, true) if roll < 0.2 => ComplaintCode::UnsubscribeIgnored,
            (Behaviour::Launderer | Behaviour::Rotator | Behaviour::Mover, _) if roll < 0.1 => {
                ComplaintCode::UnsubscribeIgnored
            }
            (_, false) if roll < 0.1 => ComplaintCode::NotSpam,
            _ => ComplaintCode::Unwanted,
        }
    }
}

/// The whole world.
pub struct World {
    /// Every sender, the bombed one included.
    pub senders: Vec<Sender>,
    /// Index of the bombed sender.
    pub bombed: usize,
}

/// Builds a world of `n` senders over `hours` simulated hours.
pub fn build(n: usize, hours: u32, seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut senders = Vec::with_capacity(n);
    for i in 0..n.max(10) {
        // Volumes log-uniform from 500 to 20,000 an hour.
        let volume = (500f64 * 40f64.powf(rng.random::<f64>())) as u64;
        let roll: f64 = rng.random();
        let behaviour = match roll {
            r if r < 0.08 => Behaviour::Spammy,
            r if r < 0.11 => Behaviour::Misrepresenting,
            r if r < 0.12 => Behaviour::Phishing,
            _ => Behaviour::Good,
        };
        let bad_rate = match behaviour {
            Behaviour::Spammy => rng.random_range(0.004..0.015),
            Behaviour::Misrepresenting => rng.random_range(0.002..0.008),
            Behaviour::Phishing => rng.random_range(0.002..0.006),
            _ => 0.0,
        };
        senders.push(Sender {
            id: format!("brand-{i:04}"),
            // Bad senders go through alpha and bravo only: charlie's book
            // stays clean, and must stay `ok` at the ESP level.
            esp: if behaviour.is_bad() { i % 2 } else { i % 3 },
            volume,
            // Good mail draws 0.002 % to 0.03 % complaints.
            base_rate: rng.random_range(0.00002..0.0003),
            bad_rate,
            behaviour,
            onset: rng.random_range(0..hours.max(2) / 2),
            only_hour: None,
            campaign: None,
            from_domain: None,
        });
    }
    // The attacker's target: a big, clean sender.
    let bombed = rng.random_range(0..senders.len());
    let target = &mut senders[bombed];
    target.behaviour = Behaviour::Bombed;
    target.volume = 20_000;
    target.base_rate = 0.0001;
    target.onset = hours / 3;
    add_rotating_spammers(&mut senders, hours, &mut rng);
    World { senders, bombed }
}

/// The spammers that rename themselves, from a quarter of the run on: the
/// campaign launderer (fresh ids, one campaign, through an ESP with a big
/// clean book), the rotator (fresh ids and campaigns, through a small ESP
/// whose good senders it outweighs) and the mover (fresh ids and campaigns
/// From one domain, moving from one ESP to another halfway), each id
/// sending [`ID_VOLUME`] messages in one hour.
fn add_rotating_spammers(senders: &mut Vec<Sender>, hours: u32, rng: &mut StdRng) {
    let onset = hours / 4;
    let id = |esp, id: String, behaviour, only_hour, campaign, rate| Sender {
        id,
        esp,
        volume: ID_VOLUME,
        base_rate: rate,
        bad_rate: rate,
        behaviour,
        onset,
        only_hour: Some(only_hour),
        campaign,
        from_domain: None,
    };
    for h in onset..hours {
        for k in 0..LAUNDERER_IDS_PER_HOUR {
            senders.push(id(
                LAUNDERER_ESP,
                format!("drop-{h:03}-{k}"),
                Behaviour::Launderer,
                h,
                Some(LAUNDERER_CAMPAIGN.to_string()),
                0.01,
            ));
        }
        for k in 0..MOVER_IDS_PER_HOUR {
            let name = format!("deal-{h:03}-{k}");
            let esp = if h < hours / 2 {
                MOVER_ESPS.0
            } else {
                MOVER_ESPS.1
            };
            senders.push(Sender {
                from_domain: Some(MOVER_DOMAIN),
                ..id(esp, name.clone(), Behaviour::Mover, h, Some(name), 0.01)
            });
        }
        for k in 0..ROTATOR_IDS_PER_HOUR {
            let name = format!("spin-{h:03}-{k}");
            senders.push(id(
                ROTATOR_ESP,
                name.clone(),
                Behaviour::Rotator,
                h,
                Some(format!("{name}-offer")),
                0.015,
            ));
        }
    }
    for i in 0..ROTATOR_ESP_GOOD {
        senders.push(Sender {
            id: format!("delta-{i:02}"),
            esp: ROTATOR_ESP,
            volume: rng.random_range(1_500..2_500),
            base_rate: rng.random_range(0.00002..0.0003),
            bad_rate: 0.0,
            behaviour: Behaviour::Good,
            onset: 0,
            only_hour: None,
            campaign: None,
            from_domain: None,
        });
    }
}

/// One complaint a provider's user files.
#[derive(Debug, Clone)]
pub struct ComplaintEvent {
    /// Index of the sender.
    pub sender: usize,
    /// Index of the provider.
    pub provider: usize,
    /// Seconds into the simulated hour the message was sent.
    pub sent_offset: u32,
    /// Seconds after sending the user complained.
    pub delay: u32,
    /// Complaint code.
    pub code: ComplaintCode,
    /// Reporter pseudonym.
    pub reporter: String,
    /// Whether the attacker filed it.
    pub attack: bool,
}

/// What one simulated hour produces: delivered counts per (sender, provider)
/// and complaints.
pub struct HourTraffic {
    /// (sender, provider, delivered).
    pub delivered: Vec<(usize, usize, u64)>,
    /// Complaints filed.
    pub complaints: Vec<ComplaintEvent>,
}

/// Traffic of simulated hour `h` (deterministic in `seed` and `h`).
pub fn hour(world: &World, h: u32, seed: u64) -> HourTraffic {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (u64::from(h) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut delivered = vec![];
    let mut complaints = vec![];
    for (si, s) in world.senders.iter().enumerate() {
        let volume = s.volume_in(h);
        if volume == 0 {
            continue;
        }
        for (pi, p) in PROVIDERS.iter().enumerate() {
            let jitter = rng.random_range(0.9..1.1);
            let d = ((volume as f64) * p.share * jitter).round() as u64;
            delivered.push((si, pi, d));
            let lambda = d as f64 * s.rate(h);
            let n = if lambda > 0.0 {
                Poisson::new(lambda).map_or(0, |dist| dist.sample(&mut rng) as u64)
            } else {
                0
            };
            for _ in 0..n {
                complaints.push(ComplaintEvent {
                    sender: si,
                    provider: pi,
                    sent_offset: rng.random_range(0..3_000),
                    delay: rng.random_range(0..600),
                    code: s.code(h, &mut rng),
                    reporter: format!("u{:016x}", rng.random::<u64>()),
                    attack: false,
                });
            }
        }
    }
    let target = &world.senders[world.bombed];
    if h >= target.onset && h < target.onset + ATTACK_HOURS {
        for k in 0..ATTACK_PER_HOUR {
            complaints.push(ComplaintEvent {
                sender: world.bombed,
                provider: ATTACKER_PROVIDER,
                sent_offset: rng.random_range(0..3_000),
                delay: rng.random_range(0..120),
                code: ComplaintCode::Phishing,
                reporter: format!("attacker-{}", k as usize % ATTACKER_ACCOUNTS),
                attack: true,
            });
        }
    }
    HourTraffic {
        delivered,
        complaints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_world_and_traffic() {
        let (a, b) = (build(200, 24, 7), build(200, 24, 7));
        assert_eq!(a.bombed, b.bombed);
        let ids = |w: &World| {
            w.senders
                .iter()
                .map(|s| (s.id.clone(), s.volume, s.behaviour))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(
            hour(&a, 5, 7).complaints.len(),
            hour(&b, 5, 7).complaints.len()
        );
        assert_ne!(ids(&a), ids(&build(200, 24, 8)));
    }

    #[test]
    fn the_world_has_every_kind_and_one_bombed_sender() {
        let w = build(500, 24, 1);
        for kind in [
            Behaviour::Good,
            Behaviour::Spammy,
            Behaviour::Misrepresenting,
            Behaviour::Phishing,
        ] {
            assert!(
                w.senders.iter().any(|s| s.behaviour == kind),
                "{kind:?} missing"
            );
        }
        assert_eq!(
            w.senders
                .iter()
                .filter(|s| s.behaviour == Behaviour::Bombed)
                .count(),
            1
        );
    }

    #[test]
    fn renaming_spammers_keep_every_id_under_the_minimum_volume() {
        let w = build(300, 24, 5);
        let mut sent: std::collections::HashMap<&str, u64> = Default::default();
        let mut campaigns = std::collections::HashSet::new();
        for h in 0..24 {
            for (s, _, d) in hour(&w, h, 5).delivered {
                let sender = &w.senders[s];
                if sender.behaviour.is_rotating_id() {
                    *sent.entry(&sender.id).or_default() += d;
                    campaigns.insert((sender.behaviour, sender.campaign_in(h)));
                }
            }
        }
        let launderers = w
            .senders
            .iter()
            .filter(|s| s.behaviour == Behaviour::Launderer)
            .count();
        let rotators = w
            .senders
            .iter()
            .filter(|s| s.behaviour == Behaviour::Rotator)
            .count();
        let movers: Vec<&Sender> = w
            .senders
            .iter()
            .filter(|s| s.behaviour == Behaviour::Mover)
            .collect();
        assert_eq!(
            sent.len(),
            launderers + rotators + movers.len(),
            "every id sends"
        );
        assert!(movers.iter().all(|s| s.from_domain == Some(MOVER_DOMAIN)));
        let esps: std::collections::BTreeSet<usize> = movers.iter().map(|s| s.esp).collect();
        assert_eq!(esps, [MOVER_ESPS.0, MOVER_ESPS.1].into(), "it moves");
        assert!(sent.values().all(|n| *n < 1_000), "{sent:?}");
        assert_eq!(
            campaigns.len(),
            1 + rotators + movers.len(),
            "one shared campaign; one per rotator id"
        );
        assert!(campaigns.contains(&(Behaviour::Launderer, LAUNDERER_CAMPAIGN.to_string())));
        assert!(w
            .senders
            .iter()
            .all(|s| s.behaviour != Behaviour::Bombed || s.only_hour.is_none()));
    }

    #[test]
    fn bad_senders_draw_far_more_complaints_after_onset_and_the_attack_is_bounded() {
        let w = build(300, 24, 3);
        let (mut bad, mut bad_delivered, mut good, mut good_delivered) = (0u64, 0u64, 0u64, 0u64);
        let mut attack = 0;
        for h in 0..24 {
            let t = hour(&w, h, 3);
            for (s, _, d) in &t.delivered {
                let sender = &w.senders[*s];
                if sender.behaviour.is_bad() && h >= sender.onset {
                    bad_delivered += d;
                } else if sender.behaviour == Behaviour::Good {
                    good_delivered += d;
                }
            }
            for c in &t.complaints {
                let sender = &w.senders[c.sender];
                attack += u64::from(c.attack);
                if sender.behaviour.is_bad() && h >= sender.onset {
                    bad += 1;
                } else if sender.behaviour == Behaviour::Good {
                    good += 1;
                }
            }
        }
        let (bad_rate, good_rate) = (
            bad as f64 / bad_delivered as f64,
            good as f64 / good_delivered as f64,
        );
        assert!(
            bad_rate > 10.0 * good_rate,
            "bad {bad_rate} vs good {good_rate}"
        );
        assert_eq!(attack, ATTACK_PER_HOUR * u64::from(ATTACK_HOURS));
    }
}
