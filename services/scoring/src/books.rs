//! Books: the counts of the levels above the sender, each kept as the sum
//! of what the senders' slices contribute. A sender's slice (its mail of
//! one campaign and From domain) adds to the book of its ESP, of its
//! campaign and of its domain. A full run adds every sender; an incremental
//! run replaces the contributions of the senders it rescored, so every
//! level stays exact without reading a whole ESP, campaign or domain again
//! (a sender is rescored whenever a row of it arrives or leaves a window).

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet};

use crate::counts::{SenderCounts, Slice};
use crate::policy::{ComplaintCount, Name, WindowCounts};
use crate::windows::COUNT;
use ricochet_kafka::ComplaintCode;
use ricochet_kafka::Level;

/// The most providers the books tell apart (one bit each).
pub const MAX_PROVIDERS: usize = 64;

/// Provider names with ids that stay the same across runs (a code's id is
/// its [`ComplaintCode::index`]).
#[derive(Debug, Default)]
pub struct Names {
    providers: Vec<Name>,
}

/// A run's code and provider names mapped to [`Names`] ids. Lookups compare
/// the run's shared names by pointer first (a handful each).
pub struct RunNames {
    providers: Vec<(Name, u8)>,
}

/// More providers than the books tell apart.
#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_PROVIDERS} providers; the ESP books tell at most {MAX_PROVIDERS} apart")]
pub struct TooManyProviders;

impl Names {
    fn id(list: &mut Vec<Name>, name: &Name) -> usize {
        match list.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                list.push(name.clone());
                list.len() - 1
            }
        }
    }

    /// Maps a run's list of provider names to ids.
    pub fn for_run(&mut self, providers: &[Name]) -> Result<RunNames, TooManyProviders> {
        let mut ids = Vec::with_capacity(providers.len());
        for p in providers {
            let id = Names::id(&mut self.providers, p);
            if id >= MAX_PROVIDERS {
                self.providers.pop();
                return Err(TooManyProviders);
            }
            ids.push((p.clone(), id as u8));
        }
        Ok(RunNames { providers: ids })
    }
}

impl RunNames {
    fn find<T: Copy>(list: &[(Name, T)], name: &Name) -> Option<T> {
        list.iter()
            .find(|(n, _)| std::sync::Arc::ptr_eq(n, name))
            .or_else(|| list.iter().find(|(n, _)| n == name))
            .map(|(_, id)| *id)
    }

    /// Provider ids of a run-local delivering mask (bit i: the run's i-th provider).
    fn provider_bits(&self, mask: u64) -> u64 {
        let mut out = 0;
        for (i, (_, id)) in self.providers.iter().enumerate() {
            if mask & (1 << i) != 0 {
                out |= 1 << id;
            }
        }
        out
    }
}

/// (level, esp, key): a group above the sender. The ESP level's key is
/// empty, and so is the domain level's ESP (a domain spans ESPs).
pub type GroupKey = (Level, String, String);

/// What a sender adds to the books: one contribution per slice.
pub type Contributions = Box<[(Slice, Contribution)]>;

/// Every group's book.
#[derive(Debug, Default)]
pub struct Books {
    /// Per ESP, its whole book.
    esps: HashMap<String, Book>,
    /// Per ESP and campaign.
    campaigns: HashMap<String, HashMap<Name, Book>>,
    /// Per From domain, across ESPs.
    domains: HashMap<Name, Book>,
    /// Per domain, the ESPs whose slices carry it and how many slices each.
    carriers: HashMap<Name, BTreeMap<String, u32>>,
}

impl Books {
    /// Replaces one sender's contributions (`old` were added before) and
    /// lists in `changed`, when given, the groups whose books changed.
    pub fn replace(
        &mut self,
        esp: &str,
        old: &[(Slice, Contribution)],
        new: &[(Slice, Contribution)],
        changed: Option<&mut HashSet<GroupKey>>,
    ) {
        for (slice, c) in old {
            self.remove(esp, slice, c);
        }
        for (slice, c) in new {
            self.add(esp, slice, c);
        }
        let Some(changed) = changed else {
            return;
        };
        for (slice, _) in old.iter().chain(new) {
            changed.insert((Level::Esp, esp.to_string(), String::new()));
            if !slice.campaign.is_empty() {
                changed.insert((Level::Campaign, esp.to_string(), slice.campaign.to_string()));
            }
            if !slice.domain.is_empty() {
                changed.insert((Level::Domain, String::new(), slice.domain.to_string()));
            }
        }
    }

    fn add(&mut self, esp: &str, slice: &Slice, c: &Contribution) {
        if !self.esps.contains_key(esp) {
            self.esps.insert(esp.to_string(), Book::default());
        }
        self.esps.get_mut(esp).expect("inserted above").add(c);
        if !slice.campaign.is_empty() {
            if !self.campaigns.contains_key(esp) {
                self.campaigns.insert(esp.to_string(), HashMap::new());
            }
            let campaigns = self.campaigns.get_mut(esp).expect("inserted above");
            campaigns.entry(slice.campaign.clone()).or_default().add(c);
        }
        if !slice.domain.is_empty() {
            self.domains.entry(slice.domain.clone()).or_default().add(c);
            let carriers = self.carriers.entry(slice.domain.clone()).or_default();
            match carriers.get_mut(esp) {
                Some(n) => *n += 1,
                None => {
                    carriers.insert(esp.to_string(), 1);
                }
            }
        }
    }

    fn remove(&mut self, esp: &str, slice: &Slice, c: &Contribution) {
        if let Some(book) = self.esps.get_mut(esp) {
            book.remove(c);
        }
        if let Some(campaigns) = self.campaigns.get_mut(esp) {
            if let Some(book) = campaigns.get_mut(&*slice.campaign) {
                book.remove(c);
                if book.is_empty() {
                    campaigns.remove(&*slice.campaign);
                }
            }
        }
        if let Some(book) = self.domains.get_mut(&*slice.domain) {
            book.remove(c);
            if book.is_empty() {
                self.domains.remove(&*slice.domain);
            }
        }
        if let Some(carriers) = self.carriers.get_mut(&*slice.domain) {
            if let Some(n) = carriers.get_mut(esp) {
                *n -= 1;
                if *n == 0 {
                    carriers.remove(esp);
                }
            }
            if carriers.is_empty() {
                self.carriers.remove(&*slice.domain);
            }
        }
    }

    /// A group's counts per window, as a sender's would be (nothing for a
    /// group without a book, or the sender level).
    pub fn counts(&self, (level, esp, key): &GroupKey, names: &Names) -> SenderCounts {
        let book = match level {
            Level::Sender => None,
            Level::Esp => self.esps.get(esp.as_str()),
            Level::Campaign => self
                .campaigns
                .get(esp.as_str())
                .and_then(|c| c.get(key.as_str())),
            Level::Domain => self.domains.get(key.as_str()),
        };
        book.map(|b| b.counts(names)).unwrap_or_default()
    }

    /// The ESPs whose mail carries a From domain.
    pub fn carriers(&self, domain: &str) -> BTreeSet<String> {
        self.carriers
            .get(domain)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every group with a book.
    pub fn keys(&self) -> impl Iterator<Item = GroupKey> + '_ {
        let esps = self
            .esps
            .keys()
            .map(|esp| (Level::Esp, esp.clone(), String::new()));
        let campaigns = self.campaigns.iter().flat_map(|(esp, c)| {
            c.keys()
                .map(|k| (Level::Campaign, esp.clone(), k.to_string()))
        });
        let domains = self
            .domains
            .keys()
            .map(|k| (Level::Domain, String::new(), k.to_string()));
        esps.chain(campaigns).chain(domains)
    }

    /// The ESPs with a book.
    pub fn esps(&self) -> impl Iterator<Item = &String> {
        self.esps.keys()
    }

    /// The From domains with a book.
    pub fn domains(&self) -> impl Iterator<Item = &Name> {
        self.domains.keys()
    }

    /// What these books hold of `domain`, as one instance's share of it
    /// (empty if they hold nothing of it).
    pub fn domain_share(&self, domain: &str, names: &Names) -> DomainShare {
        let Some(book) = self.domains.get(domain) else {
            return DomainShare::default();
        };
        let mut share = DomainShare {
            delivered: book.delivered,
            ..DomainShare::default()
        };
        for (i, per_provider) in book.senders_per_provider.iter().enumerate() {
            share.providers[i] = (per_provider.iter().enumerate())
                .filter(|(_, n)| **n > 0)
                .map(|(p, _)| names.providers[p].clone())
                .collect();
        }
        for ((code, provider), n) in &book.complaints {
            for (i, n) in n.iter().enumerate().filter(|(_, n)| **n > 0) {
                let (code, provider) = (
                    ComplaintCode::ALL[usize::from(*code)],
                    names.providers[usize::from(*provider)].clone(),
                );
                share.complaints.push((code, provider, i as u8, *n));
            }
        }
        share
    }
}

/// One scoring instance's share of a From domain's book (see
/// [`crate::partition`]): what the senders of its ESPs add, per window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainShare {
    /// Messages delivered, per window.
    pub delivered: [u64; COUNT],
    /// The providers that delivered some of the mail, per window.
    pub providers: [Vec<Name>; COUNT],
    /// (code, provider, window index, complaints).
    pub complaints: Vec<(ComplaintCode, Name, u8, u64)>,
}

impl DomainShare {
    /// Whether the share adds nothing.
    pub fn is_empty(&self) -> bool {
        self.delivered == [0; COUNT] && self.complaints.is_empty()
    }

    /// A domain's counts per window from its instances' shares, as one
    /// book of all of them would give them.
    pub fn total<'a>(shares: impl IntoIterator<Item = &'a DomainShare>) -> SenderCounts {
        let mut delivered = [0u64; COUNT];
        let mut providers: [BTreeSet<&Name>; COUNT] = Default::default();
        let mut complaints: BTreeMap<(usize, ComplaintCode, &Name), u64> = BTreeMap::new();
        for share in shares {
            for i in 0..COUNT {
                delivered[i] += share.delivered[i];
                providers[i].extend(share.providers[i].iter());
            }
            for (code, provider, i, n) in &share.complaints {
                *complaints
                    .entry((usize::from(*i), *code, provider))
                    .or_default() += n;
            }
        }
        let mut out = SenderCounts::default();
        for i in 0..COUNT {
            let complaints: Vec<ComplaintCount> = (complaints.iter())
                .filter(|((w, _, _), _)| *w == i)
                .map(|((_, code, provider), n)| ComplaintCount {
                    code: *code,
                    provider: (*provider).clone(),
                    complaints: *n,
                })
                .collect();
            if delivered[i] == 0 && complaints.is_empty() {
                continue;
            }
            out.windows[i] = Some(WindowCounts {
                delivered: delivered[i],
                delivering_providers: providers[i].len() as u32,
                complaints,
                heavy_reporters: vec![],
            });
        }
        out
    }
}

/// What one slice of a sender adds to its groups' books, per window (cumulative like
/// [`SenderCounts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contribution {
    delivered: [u64; 4],
    /// Bit per provider id that delivered some of the sender's mail.
    providers: [u64; 4],
    /// (code id, provider id, complaints per window).
    complaints: Box<[(u16, u8, [u32; 4])]>,
}

impl Contribution {
    /// A sender's contribution from its counts of this run.
    pub fn new(counts: &SenderCounts, names: &RunNames) -> Contribution {
        let mut out = Contribution::default();
        let mut complaints: Vec<(u16, u8, [u32; 4])> = vec![];
        for (i, w) in counts.windows.iter().enumerate() {
            let Some(w) = w else { continue };
            out.delivered[i] = w.delivered;
            out.providers[i] = names.provider_bits(counts.provider_masks[i]);
            for c in &w.complaints {
                let code = c.code.index() as u16;
                let Some(provider) = RunNames::find(&names.providers, &c.provider) else {
                    continue;
                };
                match complaints
                    .iter_mut()
                    .find(|(k, p, _)| *k == code && *p == provider)
                {
                    Some((_, _, n)) => n[i] = c.complaints as u32,
                    None => {
                        let mut n = [0; 4];
                        n[i] = c.complaints as u32;
                        complaints.push((code, provider, n));
                    }
                }
            }
        }
        out.complaints = complaints.into_boxed_slice();
        out
    }
}

/// One group's counts: the sum of its slices' contributions.
#[derive(Debug, Clone)]
pub struct Book {
    delivered: [u64; 4],
    /// Per window and provider id: slices that provider delivered for.
    senders_per_provider: [[u32; MAX_PROVIDERS]; 4],
    /// Complaints per (code id, provider id) and window.
    complaints: HashMap<(u16, u8), [u64; 4]>,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            delivered: [0; 4],
            senders_per_provider: [[0; MAX_PROVIDERS]; 4],
            complaints: HashMap::new(),
        }
    }
}

impl Book {
    /// Adds a contribution.
    pub fn add(&mut self, c: &Contribution) {
        for i in 0..COUNT {
            self.delivered[i] += c.delivered[i];
            for_bits(c.providers[i], |p| self.senders_per_provider[i][p] += 1);
        }
        for (code, provider, n) in c.complaints.iter() {
            let total = self.complaints.entry((*code, *provider)).or_default();
            for i in 0..COUNT {
                total[i] += u64::from(n[i]);
            }
        }
    }

    /// Removes a contribution added before.
    pub fn remove(&mut self, c: &Contribution) {
        for i in 0..COUNT {
            self.delivered[i] -= c.delivered[i];
            for_bits(c.providers[i], |p| self.senders_per_provider[i][p] -= 1);
        }
        for (code, provider, n) in c.complaints.iter() {
            let key = (*code, *provider);
            let Some(total) = self.complaints.get_mut(&key) else {
                continue;
            };
            for i in 0..COUNT {
                total[i] -= u64::from(n[i]);
            }
            if *total == [0; 4] {
                self.complaints.remove(&key);
            }
        }
    }

    /// Whether no slice contributes anything.
    pub fn is_empty(&self) -> bool {
        self.delivered == [0; 4] && self.complaints.is_empty()
    }

    /// The group's counts per window, as a sender's would be.
    pub fn counts(&self, names: &Names) -> SenderCounts {
        let mut out = SenderCounts::default();
        for i in 0..COUNT {
            let complaints: Vec<ComplaintCount> = self
                .complaints
                .iter()
                .filter(|(_, n)| n[i] > 0)
                .map(|((code, provider), n)| ComplaintCount {
                    code: ComplaintCode::ALL[usize::from(*code)],
                    provider: names.providers[usize::from(*provider)].clone(),
                    complaints: n[i],
                })
                .collect();
            let delivering = self.senders_per_provider[i]
                .iter()
                .filter(|n| **n > 0)
                .count() as u32;
            if self.delivered[i] == 0 && complaints.is_empty() {
                continue;
            }
            out.windows[i] = Some(WindowCounts {
                delivered: self.delivered[i],
                delivering_providers: delivering,
                complaints,
                heavy_reporters: vec![],
            });
        }
        out
    }
}

fn for_bits(mut mask: u64, mut f: impl FnMut(usize)) {
    while mask != 0 {
        let bit = mask.trailing_zeros() as usize;
        f(bit);
        mask &= mask - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(
        delivered: u64,
        mask: u64,
        complaints: &[(ComplaintCode, &Name, u64)],
    ) -> SenderCounts {
        let mut c = SenderCounts::default();
        c.windows[3] = Some(WindowCounts {
            delivered,
            delivering_providers: mask.count_ones(),
            complaints: complaints
                .iter()
                .map(|(code, provider, n)| ComplaintCount {
                    code: *code,
                    provider: (*provider).clone(),
                    complaints: *n,
                })
                .collect(),
            heavy_reporters: vec![],
        });
        c.provider_masks[3] = mask;
        c
    }

    /// Counts with each window's complaints in one order, to compare.
    fn sorted(mut c: SenderCounts) -> SenderCounts {
        for w in c.windows.iter_mut().flatten() {
            w.complaints
                .sort_by(|a, b| (a.code, &a.provider).cmp(&(b.code, &b.provider)));
        }
        c
    }

    #[test]
    fn the_shares_of_two_instances_add_up_to_the_book_of_one() {
        let (unwanted, phishing) = (ComplaintCode::Unwanted, ComplaintCode::Phishing);
        let (p1, p2): (Name, Name) = ("p1".into(), "p2".into());
        let slice = Slice {
            campaign: "".into(),
            domain: "news.example".into(),
        };
        let senders = [
            sender(900, 0b01, &[(unwanted, &p1, 9)]),
            sender(500, 0b11, &[(unwanted, &p1, 4), (phishing, &p2, 1)]),
            sender(300, 0b10, &[(phishing, &p2, 2)]),
        ];
        let mut one = (Books::default(), Names::default());
        let mut halves = [
            (Books::default(), Names::default()),
            (Books::default(), Names::default()),
        ];
        for (i, s) in senders.iter().enumerate() {
            for (books, names) in [&mut one, &mut halves[i % 2]] {
                // Each instance numbers providers in its own order.
                let order = if i % 2 == 0 {
                    [p2.clone(), p1.clone()]
                } else {
                    [p1.clone(), p2.clone()]
                };
                let run = names.for_run(&order).unwrap();
                let c = Contribution::new(s, &run);
                books.replace(&format!("esp-{i}"), &[], &[(slice.clone(), c)], None);
            }
        }
        let whole = one.0.counts(
            &(Level::Domain, String::new(), "news.example".into()),
            &one.1,
        );
        let shares: Vec<DomainShare> = halves
            .iter()
            .map(|(b, n)| b.domain_share("news.example", n))
            .collect();
        assert!(shares.iter().all(|s| !s.is_empty()));
        assert_eq!(sorted(DomainShare::total(&shares)), sorted(whole));
        assert!(one.0.domain_share("other.example", &one.1).is_empty());
    }

    #[test]
    fn a_book_is_the_sum_of_its_senders_and_forgets_a_replaced_one() {
        let (unwanted, phishing) = (ComplaintCode::Unwanted, ComplaintCode::Phishing);
        let (p1, p2): (Name, Name) = ("p1".into(), "p2".into());
        let mut names = Names::default();
        let run = names.for_run(&[p1.clone(), p2.clone()]).unwrap();
        let a = Contribution::new(&sender(900, 0b01, &[(unwanted, &p1, 9)]), &run);
        let b = Contribution::new(
            &sender(900, 0b11, &[(unwanted, &p1, 4), (phishing, &p2, 1)]),
            &run,
        );
        let mut book = Book::default();
        book.add(&a);
        book.add(&b);
        let w = book.counts(&names).windows[3].clone().unwrap();
        assert_eq!(w.delivered, 1800);
        assert_eq!(w.delivering_providers, 2);
        let mut got: Vec<(String, String, u64)> = w
            .complaints
            .iter()
            .map(|c| (c.code.to_string(), c.provider.to_string(), c.complaints))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("phishing".into(), "p2".into(), 1),
                ("unwanted".into(), "p1".into(), 13)
            ]
        );
        // b is rescored with nothing from p2 any more: p2 no longer delivers.
        book.remove(&b);
        book.add(&Contribution::new(&sender(100, 0b01, &[]), &run));
        let w = book.counts(&names).windows[3].clone().unwrap();
        assert_eq!((w.delivered, w.delivering_providers), (1000, 1));
        assert_eq!(w.complaints().to_owned(), 9);
        book.remove(&a);
        assert!(!book.is_empty());
    }

    #[test]
    fn slices_add_to_their_esp_campaign_and_domain_and_are_replaced() {
        let (unwanted, p1): (ComplaintCode, Name) = (ComplaintCode::Unwanted, "p1".into());
        let mut names = Names::default();
        let run = names.for_run(std::slice::from_ref(&p1)).unwrap();
        let slice = |campaign: &str, domain: &str| Slice {
            campaign: campaign.into(),
            domain: domain.into(),
        };
        let c = |n| Contribution::new(&sender(100, 0b1, &[(unwanted, &p1, n)]), &run);
        let mut books = Books::default();
        let a: Contributions = vec![(slice("c1", "d.example"), c(3)), (slice("", ""), c(1))].into();
        let mut changed = HashSet::default();
        books.replace("esp-a", &[], &a, Some(&mut changed));
        let b: Contributions = vec![(slice("c1", "d.example"), c(5))].into();
        books.replace("esp-b", &[], &b, None);
        let complaints_in = |books: &Books, key: GroupKey| {
            let w = books.counts(&key, &names).windows[3].clone();
            w.map_or(0, |w| w.complaints())
        };
        let key = |level, esp: &str, k: &str| (level, esp.to_string(), k.to_string());
        assert_eq!(complaints_in(&books, key(Level::Esp, "esp-a", "")), 4);
        assert_eq!(
            complaints_in(&books, key(Level::Campaign, "esp-a", "c1")),
            3
        );
        assert_eq!(
            complaints_in(&books, key(Level::Campaign, "esp-b", "c1")),
            5
        );
        assert_eq!(
            complaints_in(&books, key(Level::Domain, "", "d.example")),
            8
        );
        assert_eq!(
            books.carriers("d.example"),
            BTreeSet::from(["esp-a".into(), "esp-b".into()])
        );
        assert_eq!(changed.len(), 3, "esp-a, its campaign and the domain");
        // esp-b's sender moves off the domain: the domain keeps esp-a only.
        let moved: Contributions = vec![(slice("c1", ""), c(5))].into();
        books.replace("esp-b", &b, &moved, None);
        assert_eq!(
            complaints_in(&books, key(Level::Domain, "", "d.example")),
            3
        );
        assert_eq!(
            books.carriers("d.example"),
            BTreeSet::from(["esp-a".into()])
        );
        books.replace("esp-a", &a, &[], None);
        assert!(books.carriers("d.example").is_empty());
        let mut keys: Vec<GroupKey> = books.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                key(Level::Esp, "esp-a", ""),
                key(Level::Esp, "esp-b", ""),
                key(Level::Campaign, "esp-b", "c1")
            ]
        );
    }

    #[test]
    fn ids_survive_a_run_whose_lists_differ() {
        let mut names = Names::default();
        let first = names.for_run(&["b".into(), "c".into()]).unwrap();
        let second = names.for_run(&["a".into(), "c".into()]).unwrap();
        assert_eq!(first.provider_bits(0b10), 0b10, "c is id 1");
        assert_eq!(second.provider_bits(0b10), 0b10, "still id 1");
        assert_eq!(second.provider_bits(0b01), 0b100, "a is new: id 2");
        let many: Vec<Name> = (0..70).map(|i| Name::from(format!("p{i}"))).collect();
        assert!(names.for_run(&many).is_err());
    }
}
