//! `POST /v1/complaints`: the request and response bodies, and every check one item goes through.

use std::collections::HashSet;

use ricochet_kafka::ComplaintRecord;
use ricochet_registry::Registry;
use ricochet_token::binding::bindings_match;
use ricochet_token::{verify, verify_many, Claims, TokenError, VerifyOptions};
use serde::{Deserialize, Serialize};

use crate::timefmt::parse_rfc3339_ms;

/// The complaint codes a provider may send.
use ricochet_kafka::ComplaintCode;

/// Longest reporter pseudonym.
pub const MAX_REPORTER_LEN: usize = 128;

/// Request body.
#[derive(Debug, Deserialize)]
pub struct ComplaintBatch {
    /// The complaints, at most the configured item limit.
    pub complaints: Vec<ComplaintItem>,
}

/// One complaint as a provider submits it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ComplaintItem {
    /// The `Complaint-Token` header value of the reported message.
    pub token: String,
    /// What the user said about the message (a [`ComplaintCode`]).
    pub code: String,
    /// When the user complained (RFC 3339).
    pub reported_at: String,
    /// Opaque, stable pseudonym of the complaining user (for anti-abuse caps).
    #[serde(default)]
    pub reporter: Option<String>,
    /// The recipient binding recomputed from the recipient's address, proving who complained.
    #[serde(default)]
    pub recipient_proof: Option<String>,
}

/// Why an item was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: &'static str,
    /// Human-readable detail.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// Verdict for one item, in request order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemResult {
    /// Position in the request.
    pub index: usize,
    /// `accepted` or `rejected`.
    pub verdict: &'static str,
    /// Token id, when the token could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Machine-readable reason of a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Human-readable detail of a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ItemResult {
    /// An accepted item.
    pub fn accepted(index: usize, jti: Option<String>) -> Self {
        ItemResult {
            index,
            verdict: "accepted",
            jti,
            reason: None,
            detail: None,
        }
    }

    /// A rejected item.
    pub fn rejected(index: usize, r: Rejection) -> Self {
        ItemResult {
            index,
            verdict: "rejected",
            jti: None,
            reason: Some(r.reason),
            detail: Some(r.detail),
        }
    }
}

/// Response body of a batch whose accepted items are all in Kafka.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// Items accepted (durable in Kafka).
    pub accepted: usize,
    /// Items rejected (never stored).
    pub rejected: usize,
    /// One verdict per item, in request order.
    pub results: Vec<ItemResult>,
}

impl BatchResponse {
    /// Summarizes verdicts.
    pub fn new(results: Vec<ItemResult>) -> Self {
        let accepted = results.iter().filter(|r| r.verdict == "accepted").count();
        BatchResponse {
            accepted,
            rejected: results.len() - accepted,
            results,
        }
    }
}

/// Checks one complaint submitted by `provider`; returns the record to publish.
pub fn check_complaint(
    item: &mut ComplaintItem,
    provider: &str,
    registry: &Registry,
    opts: &VerifyOptions,
    received_at_ms: i64,
) -> Result<ComplaintRecord, Rejection> {
    let claims = verify(&item.token, registry, opts).map_err(token_rejection)?;
    check_claims(item, claims, provider, registry, opts, received_at_ms)
}

fn token_rejection(e: TokenError) -> Rejection {
    Rejection::new(e.reason(), e.to_string())
}

/// The checks of one complaint after its token verified: code, times,
/// provider and recipient domain, recipient proof, reporter.
///
/// The record takes the item's token, code and reporter (moved, not copied).
fn check_claims(
    item: &mut ComplaintItem,
    claims: Claims,
    provider: &str,
    registry: &Registry,
    opts: &VerifyOptions,
    received_at_ms: i64,
) -> Result<ComplaintRecord, Rejection> {
    if let Err(e) = item.code.parse::<ComplaintCode>() {
        return Err(Rejection::new("unknown-code", e.to_string()));
    }
    let reported_at_ms =
        parse_rfc3339_ms(&item.reported_at).map_err(|e| Rejection::new("bad-reported-at", e))?;
    let skew_ms = opts.clock_skew_secs * 1000;
    if reported_at_ms > received_at_ms + skew_ms {
        return Err(Rejection::new(
            "reported-in-future",
            "reported_at is later than now",
        ));
    }
    if reported_at_ms < claims.iat * 1000 - skew_ms {
        return Err(Rejection::new(
            "reported-before-issue",
            "reported_at is before the token was issued",
        ));
    }
    let hosts = registry
        .provider(provider)
        .is_some_and(|p| p.hosts(&claims.rdm));
    if !hosts {
        return Err(Rejection::new(
            "domain-not-hosted",
            format!("{provider} does not host recipient domain {}; only the recipient's own provider may complain", claims.rdm),
        ));
    }
    let recipient_proven = match &item.recipient_proof {
        None => false,
        Some(proof) if bindings_match(&claims.rcb, proof) => true,
        Some(_) => {
            return Err(Rejection::new(
                "recipient-proof-mismatch",
                "recipient_proof does not match the token's recipient binding",
            ))
        }
    };
    if let Some(r) = &item.reporter {
        let printable = r.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if r.is_empty() || r.len() > MAX_REPORTER_LEN || !printable {
            return Err(Rejection::new(
                "bad-reporter",
                format!("reporter must be 1-{MAX_REPORTER_LEN} printable ASCII characters"),
            ));
        }
    }
    Ok(ComplaintRecord {
        jti: claims.jti,
        esp: claims.iss,
        sender: claims.sub,
        provider: provider.to_string(),
        code: std::mem::take(&mut item.code),
        nature: claims.nat.to_string(),
        campaign: claims.cmp,
        recipient_domain: claims.rdm,
        from_domain: claims.dom,
        reporter: item.reporter.take(),
        rcb: Some(claims.rcb),
        recipient_proven,
        token_iat: claims.iat,
        token_exp: claims.exp,
        reported_at_ms,
        received_at_ms,
        token: std::mem::take(&mut item.token),
    })
}

/// How a batch's signatures are checked, and where.
#[derive(Clone, Copy)]
pub struct Checking<'a> {
    /// The verification pool: items (or chunks) in parallel on it, if given.
    pub pool: Option<&'a rayon::ThreadPool>,
    /// Ed25519 signatures checked `chunk` at a time in one batch equation
    /// (`None`: one at a time). The verdicts are the same either way.
    pub chunk: Option<usize>,
}

/// The chunk length that splits `len` items into the fewest chunks of at
/// most `max`, all about the same size: a short last chunk would verify at
/// a small batch's rate.
fn even_chunk(len: usize, max: usize) -> usize {
    let max = max.max(1);
    len.div_ceil(len.div_ceil(max).max(1)).max(1)
}

/// Checks a whole batch (call it off the async reactor: it verifies signatures).
/// Each accepted item's strings move into its record.
/// A token repeated within one batch is accepted once; its copies are
/// rejected as `duplicate-in-batch` so the response says exactly what was stored.
pub fn check_batch(
    items: &mut [ComplaintItem],
    provider: &str,
    registry: &Registry,
    opts: &VerifyOptions,
    received_at_ms: i64,
    how: Checking<'_>,
) -> Vec<Result<ComplaintRecord, Rejection>> {
    use rayon::prelude::*;
    let check = |item| check_complaint(item, provider, registry, opts, received_at_ms);
    let check_chunk = |chunk: &mut [ComplaintItem]| {
        let tokens: Vec<&str> = chunk.iter().map(|i| i.token.as_str()).collect();
        let verified = verify_many(&tokens, registry, opts);
        let finish = |(item, claims): (&mut ComplaintItem, Result<Claims, TokenError>)| {
            check_claims(
                item,
                claims.map_err(token_rejection)?,
                provider,
                registry,
                opts,
                received_at_ms,
            )
        };
        chunk
            .iter_mut()
            .zip(verified)
            .map(finish)
            .collect::<Vec<_>>()
    };
    let chunk = how.chunk.map(|max| even_chunk(items.len(), max));
    let mut results: Vec<_> = match (how.pool, chunk) {
        (Some(pool), None) => pool.install(|| items.par_iter_mut().map(check).collect()),
        (None, None) => items.iter_mut().map(check).collect(),
        (Some(pool), Some(n)) => {
            pool.install(|| items.par_chunks_mut(n).flat_map_iter(check_chunk).collect())
        }
        (None, Some(n)) => items.chunks_mut(n).flat_map(check_chunk).collect(),
    };
    let mut seen = HashSet::new();
    for r in results.iter_mut() {
        if let Ok(rec) = r {
            if !seen.insert(rec.jti.clone()) {
                *r = Err(Rejection::new(
                    "duplicate-in-batch",
                    format!("token {} appears earlier in this request", rec.jti),
                ));
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::even_chunk;

    #[test]
    fn chunks_are_even_and_never_over_the_maximum() {
        assert_eq!(even_chunk(200, 256), 200);
        assert_eq!(even_chunk(300, 256), 150);
        assert_eq!(even_chunk(1000, 256), 250);
        assert_eq!(even_chunk(257, 256), 129);
        assert_eq!(even_chunk(0, 256), 1);
        assert_eq!(even_chunk(5, 1), 1);
        for len in 1..600 {
            let n = even_chunk(len, 128);
            assert!(n <= 128 && len.div_ceil(n) == len.div_ceil(128), "{len}");
        }
    }
}
