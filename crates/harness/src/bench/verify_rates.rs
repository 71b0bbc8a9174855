//! The in-process verification rates `ricochet bench ingest` compares ingest
//! against: baselines A (one token at a time, one core), B (one at a time,
//! every core at once, per core), C (batch verification, one core) and R
//! (one at a time with Ed25519 on `ring`, as ingest verified before batch
//! verification), and what batch size and all-invalid batches cost.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use ricochet_registry::Registry;
use ricochet_token::verify::verify_on_ring;
use ricochet_token::{verify, verify_many, Claims, TokenError, VerifyOptions};

use super::bench_world_of;
use crate::stats::median;

/// Tokens each rate is measured on (per core for B).
const SAMPLE: usize = 20_000;

/// Baselines of one round.
#[derive(Clone, Copy)]
pub(super) struct Baselines {
    /// A: token verifications/s, one at a time, one core alone.
    pub single: f64,
    /// B: the same with every core verifying at once, per core.
    pub single_all_cores: f64,
    /// C: token verifications/s in batches, one core alone.
    pub batch: f64,
    /// R: as A, with Ed25519 signatures checked by `ring`.
    pub single_ring: f64,
}

impl Baselines {
    /// The mean of two measurements, field by field: the baselines of a
    /// round, measured before and after its drives.
    pub(super) fn mean(&self, other: &Baselines) -> Baselines {
        let m = |a: f64, b: f64| (a + b) / 2.0;
        Baselines {
            single: m(self.single, other.single),
            single_all_cores: m(self.single_all_cores, other.single_all_cores),
            batch: m(self.batch, other.batch),
            single_ring: m(self.single_ring, other.single_ring),
        }
    }
}

/// Measures A, B and C on `tokens` (all valid) with batches of `chunk`.
pub(super) fn baselines(tokens: &[String], registry: &Registry, chunk: usize) -> Result<Baselines> {
    let sample: Vec<&str> = tokens.iter().take(SAMPLE).map(String::as_str).collect();
    let single = rate(sample.len(), || single_pass(&sample, registry, true))?;
    let batch = rate(sample.len(), || batch_pass(&sample, registry, chunk, true))?;
    let single_ring = rate(sample.len(), || ring_pass(&sample, registry))?;
    Ok(Baselines {
        single,
        single_all_cores: all_cores(tokens, registry),
        batch,
        single_ring,
    })
}

/// Pairs measured per batch size; the table shows their medians.
const PAIRS: usize = 3;

/// Tokens per slice of an interleaved pair (rounded up to whole batches).
const SLICE: usize = 500;

/// One line per batch size: valid tokens/s, and what a batch of tokens that
/// all fail their signature costs against checking them one at a time.
/// Each ratio is the median of [`PAIRS`] pairs; a pair times single checks
/// and batches in alternating slices of the same tokens, so a machine that
/// slows down for a moment slows both sides alike.
pub(super) fn batch_sizes(
    tokens: &[String],
    registry: &Registry,
    chunks: &[usize],
) -> Result<Vec<String>> {
    let sample: Vec<&str> = tokens.iter().take(SAMPLE / 4).map(String::as_str).collect();
    let forged: Vec<String> = sample.iter().map(|t| flip_signature_bit(t)).collect();
    let forged: Vec<&str> = forged.iter().map(String::as_str).collect();
    let (mut singles, mut singles_forged) = (vec![], vec![]);
    let mut lines = vec![];
    for &chunk in chunks {
        let (mut valid, mut invalid) = (vec![], vec![]);
        for _ in 0..PAIRS {
            let (single, batch) = paired_rates(&sample, registry, chunk, true)?;
            let (single_forged, batch_forged) = paired_rates(&forged, registry, chunk, false)?;
            singles.push(single);
            singles_forged.push(single_forged);
            valid.push((batch, batch / single));
            invalid.push((batch_forged, single_forged / batch_forged));
        }
        let (batch, speedup) = medians(&valid);
        let (batch_forged, cost) = medians(&invalid);
        lines.push(format!(
            "| {chunk} | {batch:.0} | {speedup:.2} | {batch_forged:.0} | {cost:.2} |"
        ));
    }
    let (single, single_forged) = (median(singles), median(singles_forged));
    lines.insert(
        0,
        format!("| 1 (single) | {single:.0} | 1.00 | {single_forged:.0} | 1.00 |"),
    );
    Ok(lines)
}

/// ESP keys in the world of [`a_key_per_token`]: every batch up to this
/// size holds tokens of as many keys as tokens.
pub(super) const DISTINCT_KEYS: usize = 256;

/// [`batch_sizes`] for tokens of [`DISTINCT_KEYS`] ESPs in turn: the worst
/// case of batch verification, as each key is a full-size term of the
/// equation. A forger picks any registered `kid` for free.
pub(super) fn a_key_per_token() -> Result<Vec<String>> {
    let world = bench_world_of(SAMPLE / 4, DISTINCT_KEYS)?;
    let registry = Registry::load(&world.registry_path)?;
    batch_sizes(&world.tokens, &registry, &[8, 32, DISTINCT_KEYS])
}

/// Tokens/s of single checks and of batches of `chunk` over the same
/// tokens, timed in alternating slices; every verdict must be `valid`.
fn paired_rates(
    tokens: &[&str],
    registry: &Registry,
    chunk: usize,
    valid: bool,
) -> Result<(f64, f64)> {
    let (mut single, mut batch) = (Duration::ZERO, Duration::ZERO);
    for slice in tokens.chunks(SLICE.div_ceil(chunk) * chunk) {
        let started = Instant::now();
        single_pass(slice, registry, valid)?;
        single += started.elapsed();
        let started = Instant::now();
        batch_pass(slice, registry, chunk, valid)?;
        batch += started.elapsed();
    }
    let per_second = |took: Duration| tokens.len() as f64 / took.as_secs_f64();
    Ok((per_second(single), per_second(batch)))
}

/// The medians of the first and of the second values, each on its own.
fn medians(pairs: &[(f64, f64)]) -> (f64, f64) {
    (
        median(pairs.iter().map(|p| p.0)),
        median(pairs.iter().map(|p| p.1)),
    )
}

/// Items per second of `pass` over `n` items.
fn rate(n: usize, pass: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    pass()?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Verifies each token alone; every verdict must be `valid`.
fn single_pass(tokens: &[&str], registry: &Registry, valid: bool) -> Result<()> {
    each_alone(tokens, registry, valid, verify)
}

/// Verifies each (valid) token alone with Ed25519 on `ring`.
fn ring_pass(tokens: &[&str], registry: &Registry) -> Result<()> {
    each_alone(tokens, registry, true, verify_on_ring)
}

/// Verifies each token alone with `check`; every verdict must be `valid`.
fn each_alone(
    tokens: &[&str],
    registry: &Registry,
    valid: bool,
    check: fn(&str, &Registry, &VerifyOptions) -> Result<Claims, TokenError>,
) -> Result<()> {
    let opts = VerifyOptions::now();
    for t in tokens {
        ensure!(
            check(t, registry, &opts).is_ok() == valid,
            "unexpected verdict"
        );
    }
    Ok(())
}

/// Verifies the tokens `chunk` at a time; every verdict must be `valid`.
fn batch_pass(tokens: &[&str], registry: &Registry, chunk: usize, valid: bool) -> Result<()> {
    let opts = VerifyOptions::now();
    for c in tokens.chunks(chunk) {
        let verdicts = verify_many(c, registry, &opts);
        ensure!(
            verdicts.iter().all(|v| v.is_ok() == valid),
            "unexpected verdict"
        );
    }
    Ok(())
}

/// Token verifications per second per core when every core verifies at once
/// (on SMT or shared cores this is lower than one core alone).
fn all_cores(tokens: &[String], registry: &Registry) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let sample = &tokens[..tokens.len().min(SAMPLE * cores)];
    let opts = VerifyOptions::now();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in sample.chunks(sample.len().div_ceil(cores)) {
            scope.spawn(move || {
                for t in chunk {
                    let _ = verify(t, registry, &opts);
                }
            });
        }
    });
    sample.len() as f64 / started.elapsed().as_secs_f64() / cores as f64
}

/// The token with one bit of its signature flipped: well formed, signed by
/// a known key, and invalid only at the signature equation.
fn flip_signature_bit(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let (input, sig) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    if let Some(b) = sig.get_mut(40) {
        *b ^= 0x01;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
