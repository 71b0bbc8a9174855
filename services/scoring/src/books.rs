//! ESP books: the ESP level's counts, kept as the sum of what each of its
//! senders contributes. A full run adds every sender; an incremental run
//! replaces the contributions of the senders it rescored, so the ESP level
//! stays exact without reading an ESP's whole book again (a sender is
//! rescored whenever a row of it arrives or leaves a window).

use foldhash::{HashMap, HashMapExt};

use crate::counts::SenderCounts;
use crate::policy::{ComplaintCount, Name, WindowCounts};
use crate::windows::COUNT;

/// The most providers the books tell apart (one bit each).
pub const MAX_PROVIDERS: usize = 64;

/// Code and provider names with ids that stay the same across runs.
#[derive(Debug, Default)]
pub struct Names {
    codes: Vec<Name>,
    providers: Vec<Name>,
}

/// A run's code and provider names mapped to [`Names`] ids. Lookups compare
/// the run's shared names by pointer first (a handful each).
pub struct RunNames {
    codes: Vec<(Name, u16)>,
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

    /// Maps a run's lists of code and provider names to ids.
    pub fn for_run(
        &mut self,
        codes: &[Name],
        providers: &[Name],
    ) -> Result<RunNames, TooManyProviders> {
        let codes = codes
            .iter()
            .map(|c| (c.clone(), Names::id(&mut self.codes, c) as u16))
            .collect();
        let mut ids = Vec::with_capacity(providers.len());
        for p in providers {
            let id = Names::id(&mut self.providers, p);
            if id >= MAX_PROVIDERS {
                self.providers.pop();
                return Err(TooManyProviders);
            }
            ids.push((p.clone(), id as u8));
        }
        Ok(RunNames {
            codes,
            providers: ids,
        })
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

/// What one sender adds to its ESP's book, per window (cumulative like
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
                let (Some(code), Some(provider)) = (
                    RunNames::find(&names.codes, &c.code),
                    RunNames::find(&names.providers, &c.provider),
                ) else {
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

/// One ESP's counts: the sum of its senders' contributions.
#[derive(Debug, Clone)]
pub struct Book {
    delivered: [u64; 4],
    /// Per window and provider id: senders that provider delivered for.
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

    /// Whether no sender contributes anything.
    pub fn is_empty(&self) -> bool {
        self.delivered == [0; 4] && self.complaints.is_empty()
    }

    /// The ESP's counts per window, as a sender's would be.
    pub fn counts(&self, names: &Names) -> SenderCounts {
        let mut out = SenderCounts::default();
        for i in 0..COUNT {
            let complaints: Vec<ComplaintCount> = self
                .complaints
                .iter()
                .filter(|(_, n)| n[i] > 0)
                .map(|((code, provider), n)| ComplaintCount {
                    code: names.codes[usize::from(*code)].clone(),
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

    fn sender(delivered: u64, mask: u64, complaints: &[(&Name, &Name, u64)]) -> SenderCounts {
        let mut c = SenderCounts::default();
        c.windows[3] = Some(WindowCounts {
            delivered,
            delivering_providers: mask.count_ones(),
            complaints: complaints
                .iter()
                .map(|(code, provider, n)| ComplaintCount {
                    code: (*code).clone(),
                    provider: (*provider).clone(),
                    complaints: *n,
                })
                .collect(),
            heavy_reporters: vec![],
        });
        c.provider_masks[3] = mask;
        c
    }

    #[test]
    fn a_book_is_the_sum_of_its_senders_and_forgets_a_replaced_one() {
        let (unwanted, phishing): (Name, Name) = ("unwanted".into(), "phishing".into());
        let (p1, p2): (Name, Name) = ("p1".into(), "p2".into());
        let mut names = Names::default();
        let run = names
            .for_run(
                &[phishing.clone(), unwanted.clone()],
                &[p1.clone(), p2.clone()],
            )
            .unwrap();
        let a = Contribution::new(&sender(900, 0b01, &[(&unwanted, &p1, 9)]), &run);
        let b = Contribution::new(
            &sender(900, 0b11, &[(&unwanted, &p1, 4), (&phishing, &p2, 1)]),
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
    fn ids_survive_a_run_whose_lists_differ() {
        let mut names = Names::default();
        let first = names.for_run(&[], &["b".into(), "c".into()]).unwrap();
        let second = names.for_run(&[], &["a".into(), "c".into()]).unwrap();
        assert_eq!(first.provider_bits(0b10), 0b10, "c is id 1");
        assert_eq!(second.provider_bits(0b10), 0b10, "still id 1");
        assert_eq!(second.provider_bits(0b01), 0b100, "a is new: id 2");
        let many: Vec<Name> = (0..70).map(|i| Name::from(format!("p{i}"))).collect();
        assert!(names.for_run(&[], &many).is_err());
    }
}
