//! `domain_books` and `domain_decisions`: how partitioned scoring
//! instances share the domain level (see [`crate::partition`]). Each
//! instance writes its share of the From domains its ESPs carry; the
//! instance owning the level reads them all and writes its decisions,
//! which every instance reads to tell its own ESPs.

use clickhouse::{Client, Row};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::books::DomainShare;
use crate::policy::{Name, Tier};
use crate::windows::COUNT;
use crate::ScoringError;

/// A row of `domain_books` (`updated_at` is the server's insert time).
#[derive(Debug, Row, Serialize, Deserialize)]
struct ShareRow {
    domain: String,
    instance: u16,
    delivered: Vec<u64>,
    providers: Vec<Vec<String>>,
    complaint_code: Vec<String>,
    complaint_provider: Vec<String>,
    complaint_window: Vec<u8>,
    complaint_count: Vec<u64>,
}

impl ShareRow {
    fn new(domain: &str, instance: u16, share: &DomainShare) -> ShareRow {
        let c = &share.complaints;
        ShareRow {
            domain: domain.to_string(),
            instance,
            delivered: share.delivered.to_vec(),
            providers: (share.providers.iter())
                .map(|p| p.iter().map(|n| n.to_string()).collect())
                .collect(),
            complaint_code: c.iter().map(|x| x.0.as_str().to_string()).collect(),
            complaint_provider: c.iter().map(|x| x.1.to_string()).collect(),
            complaint_window: c.iter().map(|x| x.2).collect(),
            complaint_count: c.iter().map(|x| x.3).collect(),
        }
    }

    fn share(self) -> crate::error::Result<DomainShare> {
        let bad = |detail: &str| ScoringError::Stored {
            table: "domain_books",
            detail: format!("domain {}: {detail}", self.domain),
        };
        let mut share = DomainShare::default();
        if !self.delivered.is_empty() {
            share.delivered = (self.delivered.as_slice().try_into())
                .map_err(|_| bad("delivered has the wrong length"))?;
            for (i, p) in self.providers.iter().enumerate().take(COUNT) {
                share.providers[i] = p.iter().map(|n| Name::from(n.as_str())).collect();
            }
        }
        for i in 0..self.complaint_code.len() {
            let (provider, window, n) = (
                self.complaint_provider.get(i),
                self.complaint_window.get(i),
                self.complaint_count.get(i),
            );
            let (Some(provider), Some(window), Some(n)) = (provider, window, n) else {
                return Err(bad("complaint columns of different lengths"));
            };
            if usize::from(*window) >= COUNT {
                return Err(bad("a window index out of range"));
            }
            let code = super::parse_code(&self.complaint_code[i])?;
            share
                .complaints
                .push((code, Name::from(provider.as_str()), *window, *n));
        }
        Ok(share)
    }
}

const SHARE_COLUMNS: &str = "domain, instance, delivered, providers, complaint_code, \
     complaint_provider, complaint_window, complaint_count";

/// Writes this instance's shares of the domains listed (an empty share
/// says it adds nothing to that domain any more).
pub async fn publish(
    client: &Client,
    instance: u16,
    shares: &[(Name, DomainShare)],
) -> crate::error::Result<()> {
    let rows: Vec<ShareRow> = (shares.iter())
        .map(|(domain, share)| ShareRow::new(domain, instance, share))
        .collect();
    super::insert(client, "domain_books", &rows).await
}

/// The domains this instance's newest shares add something to.
pub async fn published(client: &Client, instance: u16) -> crate::error::Result<Vec<String>> {
    client
        .query("SELECT domain FROM domain_books FINAL WHERE instance = ? AND length(delivered) + length(complaint_code) > 0")
        .bind(instance)
        .fetch_all()
        .await
        .map_err(Into::into)
}

/// Every instance's newest share of the domains written since `since_ms`
/// (server clock) or named in `also`, or of every domain when `since_ms`
/// is `None`; per domain, its non-empty shares.
pub async fn shares(
    client: &Client,
    since_ms: Option<i64>,
    also: Vec<String>,
) -> crate::error::Result<HashMap<String, Vec<DomainShare>>> {
    let filter = match since_ms {
        None => "1".to_string(),
        Some(ms) => format!(
            "(domain GLOBAL IN (SELECT domain FROM domain_books WHERE updated_at >= fromUnixTimestamp64Milli({ms})) OR has(?, domain))"
        ),
    };
    let mut query = client.query(&format!(
        "SELECT {SHARE_COLUMNS} FROM domain_books FINAL WHERE {filter}"
    ));
    if since_ms.is_some() {
        query = query.bind(also);
    }
    let rows: Vec<ShareRow> = query.fetch_all().await?;
    let mut out: HashMap<String, Vec<DomainShare>> = HashMap::default();
    for row in rows {
        let domain = row.domain.clone();
        let share = row.share()?;
        let entry = out.entry(domain).or_default();
        if !share.is_empty() {
            entry.push(share);
        }
    }
    Ok(out)
}

/// A row of `domain_decisions`: a domain's tier in force, with the rule and
/// evidence of its last change.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct DecisionRow {
    /// The From domain.
    pub domain: String,
    /// Tier in force.
    pub tier: String,
    /// The rule of the last change.
    pub rule: String,
    /// The evidence of the last change (canonical JSON).
    pub evidence: String,
    /// When the change was decided, Unix milliseconds.
    pub at_ms: i64,
}

impl DecisionRow {
    /// The tier in force.
    pub fn tier(&self) -> crate::error::Result<Tier> {
        (self.tier.parse()).map_err(ScoringError::stored::<ricochet_kafka::UnknownTier>(
            "domain_decisions",
        ))
    }
}

/// Records the owner's decisions.
pub async fn record(client: &Client, rows: &[DecisionRow]) -> crate::error::Result<()> {
    super::insert(client, "domain_decisions", rows).await
}

/// Every domain's newest decision.
pub async fn decisions(client: &Client) -> crate::error::Result<Vec<DecisionRow>> {
    client
        .query("SELECT domain, toString(tier) AS tier, toString(rule) AS rule, evidence, at_ms FROM domain_decisions FINAL ORDER BY domain")
        .fetch_all()
        .await
        .map_err(Into::into)
}
