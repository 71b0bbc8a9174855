//! A sender's counts: per window, per slice of its mail (campaign and From
//! domain), and how slices and reporters add up. Read by
//! [`crate::store::reader`], judged by [`crate::policy`], summed into the
//! books of the levels above the sender by [`crate::books`].

use foldhash::{HashMap, HashMapExt};
use ricochet_kafka::ComplaintCode;

use crate::policy::{HeavyReporter, Name, WindowCounts};
use crate::windows::COUNT;

/// (esp, sender).
pub type SenderKey = (String, String);

/// The part of a sender's mail with one campaign and one From domain (each
/// empty where the rows carry none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice {
    /// Campaign id, or empty.
    pub campaign: Name,
    /// From domain (token `dom`), or empty.
    pub domain: Name,
}

/// A sender's counts per slice of its mail, in slice order.
pub type SliceCounts = Vec<(Slice, SenderCounts)>;

/// One sender's counts per window (indexed like the policy's windows), and when the
/// oldest counted row leaves a window, after which the sender must be rescored.
#[derive(Debug, Default, PartialEq)]
pub struct SenderCounts {
    /// Counts per window, `None` where the window holds nothing.
    pub windows: [Option<WindowCounts>; 4],
    /// Earliest time (ms) at which a counted row leaves its window.
    pub next_expiry_ms: Option<i64>,
    /// Per window, a bit per provider (of the reader's list) that delivered
    /// some of the mail: the ESP books union them across senders.
    pub provider_masks: [u64; 4],
}

impl SenderCounts {
    /// The sum of a sender's slices.
    pub fn total(slices: SliceCounts) -> SenderCounts {
        let mut slices = slices.into_iter().map(|(_, c)| c);
        let mut out = slices.next().unwrap_or_default();
        for c in slices {
            out.absorb(c);
        }
        out
    }

    /// Adds another slice's counts to these.
    fn absorb(&mut self, other: SenderCounts) {
        for (i, window) in other.windows.into_iter().enumerate() {
            self.provider_masks[i] |= other.provider_masks[i];
            let Some(o) = window else { continue };
            let mask = self.provider_masks[i];
            let w = self.window(i);
            w.delivered += o.delivered;
            w.delivering_providers = mask.count_ones();
            for c in o.complaints {
                match w
                    .complaints
                    .iter_mut()
                    .find(|x| x.code == c.code && x.provider == c.provider)
                {
                    Some(x) => x.complaints += c.complaints,
                    None => w.complaints.push(c),
                }
            }
        }
        if let Some(at) = other.next_expiry_ms {
            self.next_expiry_ms = Some(self.next_expiry_ms.map_or(at, |e| e.min(at)));
        }
    }

    pub(crate) fn window(&mut self, i: usize) -> &mut WindowCounts {
        self.windows[i].get_or_insert_with(WindowCounts::default)
    }

    /// Records that a row leaves a window at `left_ms` (its time plus the
    /// length of the shortest window holding it).
    pub(crate) fn expire_at(&mut self, left_ms: i64) {
        // A row at t is inside [now - len, now] until now passes t + len.
        let at = left_ms + 1;
        self.next_expiry_ms = Some(self.next_expiry_ms.map_or(at, |e| e.min(at)));
    }
}

/// A code and its count in each window.
pub(crate) type CodeCounts = (ComplaintCode, [u64; 4]);

/// Per (subject, provider, reporter): the counts per code in each window.
pub(crate) type PerReporter<K> = HashMap<(K, Name, String), Vec<CodeCounts>>;

/// Adds a reporter's count of one code to `per_reporter`, summing with what
/// the same subject, reporter and code already have.
pub(crate) fn add_code<K: std::hash::Hash + Eq>(
    per_reporter: &mut PerReporter<K>,
    key: (K, Name, String),
    code: ComplaintCode,
    n: [u64; 4],
) {
    let codes = per_reporter.entry(key).or_default();
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, counts)) => counts.iter_mut().zip(n).for_each(|(a, b)| *a += b),
        None => codes.push((code, n)),
    }
}

/// The reporters over `cap` per subject: in each window, a reporter is
/// heavy if all its codes together pass the cap.
pub(crate) fn over_cap<K: std::hash::Hash + Eq + Clone>(
    per_reporter: PerReporter<K>,
    cap: u64,
) -> HashMap<K, Vec<(usize, HeavyReporter)>> {
    let mut out: HashMap<K, Vec<(usize, HeavyReporter)>> = HashMap::new();
    for ((key, provider, reporter), codes) in per_reporter {
        for i in 0..COUNT {
            let total: u64 = codes.iter().map(|(_, n)| n[i]).sum();
            if total > cap {
                let by_code = codes
                    .iter()
                    .filter(|(_, n)| n[i] > 0)
                    .map(|(code, n)| (*code, n[i]))
                    .collect();
                out.entry(key.clone()).or_default().push((
                    i,
                    HeavyReporter {
                        provider: provider.clone(),
                        reporter: reporter.clone(),
                        by_code,
                    },
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ComplaintCount;

    fn slice_counts(
        window: usize,
        delivered: u64,
        mask: u64,
        code: ComplaintCode,
        n: u64,
    ) -> SenderCounts {
        let mut c = SenderCounts::default();
        let w = c.window(window);
        w.delivered = delivered;
        w.delivering_providers = mask.count_ones();
        w.complaints.push(ComplaintCount {
            code,
            provider: "p1".into(),
            complaints: n,
        });
        c.provider_masks[window] = mask;
        c
    }

    #[test]
    fn a_senders_total_sums_its_slices() {
        let (unwanted, phishing) = (ComplaintCode::Unwanted, ComplaintCode::Phishing);
        let slice = |campaign: &str| Slice {
            campaign: campaign.into(),
            domain: "".into(),
        };
        let mut a = slice_counts(3, 500, 0b01, unwanted, 2);
        a.next_expiry_ms = Some(9_000);
        let mut b = slice_counts(3, 700, 0b10, unwanted, 3);
        b.window(3).complaints.push(ComplaintCount {
            code: phishing,
            provider: "p1".into(),
            complaints: 1,
        });
        b.next_expiry_ms = Some(4_000);
        let c = slice_counts(1, 10, 0b01, unwanted, 1);
        let total = SenderCounts::total(vec![(slice("a"), a), (slice("b"), b), (slice("c"), c)]);
        let w = total.windows[3].as_ref().unwrap();
        assert_eq!((w.delivered, w.delivering_providers), (1200, 2));
        assert_eq!(w.complaints.len(), 2, "one entry per (code, provider)");
        assert_eq!(w.complaints(), 6);
        assert_eq!(total.windows[1].as_ref().unwrap().delivered, 10);
        assert!(total.windows[0].is_none());
        assert_eq!(total.next_expiry_ms, Some(4_000));
        assert_eq!(total.provider_masks[3], 0b11);
    }

    #[test]
    fn a_reporters_counts_are_summed_per_code_before_the_cap() {
        let mut per_reporter = PerReporter::default();
        let key = |who: &str| ("campaign-1", Name::from("p1"), who.to_string());
        let unwanted = ComplaintCode::Unwanted;
        // Two slices of one campaign, two complaints each in the 30-day
        // window only: 4 > 3 there, under the cap in every shorter one.
        add_code(&mut per_reporter, key("r1"), unwanted, [0, 0, 0, 2]);
        add_code(&mut per_reporter, key("r1"), unwanted, [0, 0, 1, 2]);
        add_code(&mut per_reporter, key("r2"), unwanted, [0, 0, 0, 3]);
        let heavy = over_cap(per_reporter, 3);
        let found = &heavy["campaign-1"];
        assert_eq!(found.len(), 1, "only r1 passes the cap, in one window");
        let (window, reporter) = &found[0];
        assert_eq!((*window, reporter.reporter.as_str()), (3, "r1"));
        assert_eq!(reporter.by_code, vec![(unwanted, 4)]);
    }
}
