//! Turning the reader's rows into counts: the cells of a complaint row
//! into per-window counts by code and provider, and one shared name per
//! campaign or domain.

use ricochet_kafka::ComplaintCode;

use super::reader::{unlisted, ComplaintRow, RowKey};
use crate::counts::{SenderCounts, Slice};
use crate::policy::{ComplaintCount, Name};

/// One shared [`Name`] per distinct string: a campaign or domain repeats
/// over many senders.
#[derive(Default)]
pub(super) struct Interner(foldhash::HashSet<Name>);

impl Interner {
    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(n.clone());
        n
    }

    /// A row's order key.
    pub(super) fn key(&mut self, esp: &str, sender: &str, campaign: &str, domain: &str) -> RowKey {
        let slice = Slice {
            campaign: self.name(campaign),
            domain: self.name(domain),
        };
        ((esp.to_string(), sender.to_string()), slice)
    }
}

/// Turns complaint rows into per-window counts by code and provider.
pub(super) struct Tally {
    pub(super) codes: Vec<ComplaintCode>,
    pub(super) providers: Vec<Name>,
    /// Tokens per bucket, indexed by (code, provider) pair; zero between rows.
    pub(super) per_pair: Vec<[u64; 4]>,
    /// The pairs of the current row, in order of first appearance.
    pub(super) seen: Vec<usize>,
    /// Campaign and domain names of the complaint rows.
    pub(super) names: Interner,
}

impl Tally {
    pub(super) fn new(codes: Vec<ComplaintCode>, providers: Vec<Name>) -> Self {
        let pairs = (codes.len() + 1) * (providers.len() + 1);
        Tally {
            codes,
            providers,
            per_pair: vec![[0; 4]; pairs],
            seen: vec![],
            names: Interner::default(),
        }
    }

    /// A slice's counts from its complaint row.
    pub(super) fn slice(
        &mut self,
        row: &ComplaintRow<'_>,
    ) -> crate::error::Result<(RowKey, SenderCounts)> {
        let mut counts = SenderCounts::default();
        let np = self.providers.len() + 1;
        for &cell in &row.cells {
            let (pair, bucket) = (usize::from(cell / 4), usize::from(cell % 4));
            let Some(n) = self.per_pair.get_mut(pair) else {
                return Err(unlisted("complaint code or provider"));
            };
            if *n == [0; 4] {
                self.seen.push(pair);
            }
            n[bucket] += 1;
        }
        // A window holds its own bucket and every shorter one's.
        for pair in self.seen.drain(..) {
            let buckets = std::mem::take(&mut self.per_pair[pair]);
            let (c, p) = (pair / np, pair % np);
            let (Some(code), Some(provider)) = (
                c.checked_sub(1).and_then(|c| self.codes.get(c)),
                p.checked_sub(1).and_then(|p| self.providers.get(p)),
            ) else {
                return Err(unlisted("complaint code or provider"));
            };
            let mut n = 0;
            for (i, k) in buckets.into_iter().enumerate() {
                n += k;
                if n > 0 {
                    counts.window(i).complaints.push(ComplaintCount {
                        code: *code,
                        provider: provider.clone(),
                        complaints: n,
                    });
                }
            }
        }
        counts.expire_at(row.expires);
        let key = self
            .names
            .key(row.esp, row.sender, row.campaign, row.from_domain);
        Ok((key, counts))
    }
}
