//! Ed25519 verification as Ricochet enforces it, one signature at a time or
//! many at once, with the same verdicts both ways.
//!
//! The rule (`schemas/complaint-token.md`, "Ed25519 verification rule"):
//! - the public key is the canonical encoding of a point of prime order
//!   (checked once, when the key is read: [`check_public_key`]);
//! - the signature is 64 bytes, `R` a canonical point encoding, `s < L`;
//! - `[8][s]B = [8]R + [8][k]A` with `k = SHA-512(R ‖ A ‖ M) mod L`: the
//!   cofactored equation of ZIP-215, which batch verification needs.
//!
//! A signature alone is checked by `ed25519-zebra`, which implements ZIP-215.
//! Many are checked in one random linear combination of that same equation
//! ([`verify_all`]): each signature's terms (`R` decompressed, `s`, `k`) are
//! computed once, and when the combination fails they are reused to check
//! each signature alone, so a batch that fails costs little more than single
//! checks. The encoding checks are the same for both paths, so a batch can
//! never accept what a single check refuses, or the reverse (up to the
//! 2^-128 chance of random batch coefficients hiding a bad signature).

use std::collections::HashMap;
use std::sync::LazyLock;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_zebra::{Signature, VerificationKey};
use rand::RngExt;
use sha2::{Digest, Sha512};

/// The order of the prime subgroup, L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// The field prime p = 2^255 - 19, little-endian.
const P: [u8; 32] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// A public key Ricochet accepts, ready to verify with.
#[derive(Clone, Copy)]
pub(crate) struct PublicKey {
    bytes: [u8; 32],
    key: VerificationKey,
    /// The key's point negated, for `[s]B - [k]A`.
    minus_a: EdwardsPoint,
    /// `[2^128](-A)`, for the high half of a batch's coefficient of `-A`.
    minus_a_high: EdwardsPoint,
}

/// One signature to check: a key, the signed bytes and the signature as sent.
pub(crate) struct Job<'a> {
    pub key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a [u8],
}

/// Why a public key is refused.
pub(crate) fn check_public_key(bytes: &[u8]) -> Result<PublicKey, &'static str> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "not 32 bytes")?;
    if !is_canonical_point_encoding(&bytes) {
        return Err("not a canonical point encoding");
    }
    let point = CompressedEdwardsY(bytes)
        .decompress()
        .ok_or("not a point of the curve")?;
    if point.is_small_order() {
        return Err("a point of small order (it would verify signatures of any message)");
    }
    if !point.is_torsion_free() {
        return Err("not in the prime-order subgroup (it has a torsion component)");
    }
    let key = VerificationKey::try_from(bytes).map_err(|_| "not a point of the curve")?;
    Ok(PublicKey {
        bytes,
        key,
        minus_a: -point,
        minus_a_high: high_point(&-point),
    })
}

/// Checks one signature.
pub(crate) fn verify_one(job: &Job<'_>) -> bool {
    match signature_of(job.signature) {
        Some(sig) => job.key.key.verify(&sig, job.message).is_ok(),
        None => false,
    }
}

/// Checks every signature, as [`verify_one`] would, in one batch equation;
/// when the batch fails, each of its signatures is checked alone with the
/// terms the batch already computed, to find the bad ones.
pub(crate) fn verify_all(jobs: &[Job<'_>]) -> Vec<bool> {
    let terms = Terms::of_all(jobs);
    let well_formed: Vec<&Terms<'_>> = terms.iter().flatten().collect();
    let batch_holds = well_formed.len() > 1 && batch_equation_holds(&well_formed);
    terms
        .iter()
        .map(|t| t.as_ref().is_some_and(|t| batch_holds || t.hold_alone()))
        .collect()
}

/// One signature's terms of the equation `[8]R = [8]([s]B - [k]A)`.
struct Terms<'a> {
    key: &'a PublicKey,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl<'a> Terms<'a> {
    /// Each job's terms, or `None` where the signature's encoding is one the
    /// rule refuses or `R` is not a point. The `R`s are decompressed together
    /// (`decompress_batch`: the same points as one at a time, several square
    /// roots computed at once), which is most of what a term costs.
    fn of_all(jobs: &[Job<'a>]) -> Vec<Option<Self>> {
        let sigs: Vec<Option<Signature>> = jobs.iter().map(|j| signature_of(j.signature)).collect();
        let rs: Vec<CompressedEdwardsY> = sigs
            .iter()
            .flatten()
            .map(|sig| CompressedEdwardsY(*sig.r_bytes()))
            .collect();
        let mut points = CompressedEdwardsY::decompress_batch(&rs).into_iter();
        jobs.iter()
            .zip(&sigs)
            .map(|(job, sig)| {
                let sig = sig.as_ref()?;
                let r = points.next().flatten()?;
                Terms::with_r(job, sig, r)
            })
            .collect()
    }

    /// The terms of a signature whose `R` is the point `r`, if `s` is canonical.
    fn with_r(job: &Job<'a>, sig: &Signature, r: EdwardsPoint) -> Option<Self> {
        let s = Option::from(Scalar::from_canonical_bytes(*sig.s_bytes()))?;
        let hash = Sha512::new()
            .chain_update(sig.r_bytes())
            .chain_update(job.key.bytes)
            .chain_update(job.message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        Some(Terms {
            key: job.key,
            r,
            s,
            k,
        })
    }

    /// ZIP-215's single check, as `ed25519-zebra` computes it.
    fn hold_alone(&self) -> bool {
        let r_prime =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &self.key.minus_a, &self.s);
        (self.r - r_prime).mul_by_cofactor().is_identity()
    }
}

/// `[8](Σ z·R - [Σ z·s]B + Σ_keys [Σ z·k]A) = 0` for random 128-bit `z`:
/// holds (but for a 2^-128 chance) if and only if every equation holds.
fn batch_equation_holds(terms: &[&Terms<'_>]) -> bool {
    let mut rng = rand::rng();
    let mut b_coeff = Scalar::ZERO;
    let (mut coeffs, mut points) = (
        Vec::with_capacity(terms.len() + 8),
        Vec::with_capacity(terms.len() + 8),
    );
    // A request holds tokens of a few keys: one term per key, not per token.
    let mut key_at: HashMap<[u8; 32], usize> = HashMap::new();
    let mut keys: Vec<(Scalar, &PublicKey)> = Vec::new();
    for t in terms {
        let z = Scalar::from(rng.random::<u128>());
        b_coeff += z * t.s;
        coeffs.push(z);
        points.push(t.r);
        let at = *key_at.entry(t.key.bytes).or_insert_with(|| {
            keys.push((Scalar::ZERO, t.key));
            keys.len() - 1
        });
        keys[at].0 -= z * t.k;
    }
    // Σ z·R - Σ [Σ z·k](-A) - [Σ z·s]B, the signs in the coefficients; the
    // full-length ones split in halves so every scalar is below 2^128.
    for (a_coeff, key) in &keys {
        push_halves(
            &mut coeffs,
            &mut points,
            a_coeff,
            key.minus_a,
            key.minus_a_high,
        );
    }
    let (b, b_high) = (ED25519_BASEPOINT_POINT, *BASEPOINT_HIGH);
    push_halves(&mut coeffs, &mut points, &-b_coeff, b, b_high);
    let sum = EdwardsPoint::vartime_multiscalar_mul(&coeffs, &points);
    sum.mul_by_cofactor().is_identity()
}

/// `[2^128]B`, for the high half of a batch's coefficient of `B`.
static BASEPOINT_HIGH: LazyLock<EdwardsPoint> =
    LazyLock::new(|| high_point(&ED25519_BASEPOINT_POINT));

/// `[2^128]P`.
fn high_point(p: &EdwardsPoint) -> EdwardsPoint {
    p * Scalar::from(u128::MAX) + p
}

/// Pushes the term `c·P` as `lo·P + hi·([2^128]P)`, `c = lo + 2^128·hi`.
/// With every scalar of the batch below 2^128, the vendored multiscalar
/// multiplication leaves out the high half of its columns
/// (vendor/README.md): about a sixth of its work at 200 signatures.
fn push_halves(
    coeffs: &mut Vec<Scalar>,
    points: &mut Vec<EdwardsPoint>,
    c: &Scalar,
    p: EdwardsPoint,
    p_high: EdwardsPoint,
) {
    let bytes = c.to_bytes();
    let half = |b: &[u8]| Scalar::from(u128::from_le_bytes(b.try_into().expect("16 bytes")));
    coeffs.extend([half(&bytes[..16]), half(&bytes[16..])]);
    points.extend([p, p_high]);
}

/// The signature, if its encoding is one the rule allows (64 bytes,
/// canonical `R`, `s < L`); the equation is left to the caller.
fn signature_of(bytes: &[u8]) -> Option<Signature> {
    let bytes: [u8; 64] = bytes.try_into().ok()?;
    let (r, s) = bytes.split_at(32);
    let r: [u8; 32] = r.try_into().ok()?;
    let s: [u8; 32] = s.try_into().ok()?;
    (is_canonical_point_encoding(&r) && less_than(&s, &L)).then(|| Signature::from_bytes(&bytes))
}

/// True if `enc` is the one encoding of its point: y < p, and no sign bit on
/// x = 0 (the points y = 1 and y = -1). ZIP-215 accepts the other encodings;
/// Ricochet does not, so a signature has one byte form per (R, s).
fn is_canonical_point_encoding(enc: &[u8; 32]) -> bool {
    let mut y = *enc;
    let negative = y[31] & 0x80 != 0;
    y[31] &= 0x7f;
    if !less_than(&y, &P) {
        return false;
    }
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut minus_one = P;
    minus_one[0] -= 1;
    !(negative && (y == one || y == minus_one))
}

/// `a < b` for little-endian 256-bit integers (variable time: inputs are public).
fn less_than(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().rev().cmp(b.iter().rev()).is_lt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    /// Encodings at the edges: of p and L, all ones and zeros, small and
    /// just-above-p `y`, the torsion points, multiples of B; each with and
    /// without the sign bit.
    fn edge_encodings() -> Vec<[u8; 32]> {
        let mut cases: Vec<[u8; 32]> = vec![P, L, [0xff; 32], [0; 32]];
        for small in 0u8..=20 {
            let mut y = [0u8; 32];
            y[0] = small;
            cases.push(y);
            let mut high = P;
            high[0] = high[0].wrapping_add(small);
            cases.push(high);
        }
        for t in EIGHT_TORSION.iter() {
            cases.push(t.compress().0);
        }
        for n in 1u64..50 {
            cases.push((ED25519_BASEPOINT_POINT * Scalar::from(n)).compress().0);
        }
        let with_sign = cases.iter().map(|c| {
            let mut c = *c;
            c[31] ^= 0x80;
            c
        });
        cases.clone().into_iter().chain(with_sign).collect()
    }

    #[test]
    fn canonical_encoding_agrees_with_decompress_then_compress() {
        for enc in edge_encodings() {
            let round_trip = CompressedEdwardsY(enc)
                .decompress()
                .map(|p| p.compress().0 == enc);
            if let Some(canonical) = round_trip {
                assert_eq!(is_canonical_point_encoding(&enc), canonical, "{enc:02x?}");
            }
        }
    }

    /// The vendored `decompress_batch` (vendor/README.md) must give the
    /// points `decompress` gives, including for encodings that are not
    /// points, by every way of computing the square roots this CPU can run
    /// (one at a time, AVX2, AVX-512 IFMA), not only the one it picks.
    #[test]
    fn batch_decompression_gives_what_one_at_a_time_gives() {
        let mut rng = rand::rng();
        let mut encodings = edge_encodings();
        for n in 0..2_000u64 {
            let point = ED25519_BASEPOINT_POINT * Scalar::from(rng.random::<u64>());
            let mut enc = point.compress().0;
            if n % 3 == 0 {
                enc = rng.random(); // about half of random y are points
            }
            encodings.push(enc);
        }
        encodings.push([0x42; 32]); // not a multiple of eight: the tail too
        let inputs: Vec<CompressedEdwardsY> =
            encodings.iter().map(|e| CompressedEdwardsY(*e)).collect();
        let want: Vec<Option<EdwardsPoint>> = inputs.iter().map(|c| c.decompress()).collect();
        let points = want.iter().flatten().count();
        assert!(points > 1_000 && points < inputs.len(), "{points} points");
        let mut by_path = CompressedEdwardsY::decompress_batch_by_each_path(&inputs);
        by_path.push(("chosen", CompressedEdwardsY::decompress_batch(&inputs)));
        for (path, got) in by_path {
            assert_eq!(got.len(), inputs.len(), "{path}");
            for ((input, got), want) in inputs.iter().zip(&got).zip(&want) {
                let same = match (got, want) {
                    (Some(g), Some(w)) => g == w && g.compress() == w.compress(),
                    (None, None) => true,
                    _ => false,
                };
                assert!(same, "{path}: {:02x?}", input.0);
            }
        }
    }

    /// The vendored multiscalar multiplication leaves out the columns (or
    /// doublings) above every scalar's top digit (vendor/README.md): its sums
    /// must still be exact, with short, full-length and zero scalars, by
    /// Straus (under 190 points) and by Pippenger (from 190).
    #[test]
    fn multiscalar_sums_are_exact_with_short_scalars() {
        let mut rng = rand::rng();
        for n in [1usize, 2, 8, 189, 190, 250] {
            let points: Vec<EdwardsPoint> = (0..n)
                .map(|_| ED25519_BASEPOINT_POINT * Scalar::from(rng.random::<u64>()))
                .collect();
            for kind in ["short", "full", "zero"] {
                let scalars: Vec<Scalar> = (0..n)
                    .map(|i| match kind {
                        "short" => Scalar::from(rng.random::<u128>() >> (i % 100)),
                        "full" => Scalar::from_bytes_mod_order(rng.random()),
                        _ => Scalar::ZERO,
                    })
                    .collect();
                let want: EdwardsPoint = scalars.iter().zip(&points).map(|(s, p)| s * p).sum();
                let got = EdwardsPoint::vartime_multiscalar_mul(&scalars, &points);
                assert_eq!(got, want, "{n} points, {kind} scalars");
            }
        }
    }

    #[test]
    fn a_coefficient_split_in_halves_sums_to_the_whole() {
        let p = ED25519_BASEPOINT_POINT * Scalar::from(12345u64);
        let mut two_128 = [0u8; 32];
        two_128[16] = 1;
        let high = high_point(&p);
        assert_eq!(high, p * Scalar::from_bytes_mod_order(two_128));
        for c in [
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from_bytes_mod_order([0xab; 32]),
        ] {
            let (mut coeffs, mut points) = (vec![], vec![]);
            push_halves(&mut coeffs, &mut points, &c, p, high);
            let sum: EdwardsPoint = coeffs.iter().zip(&points).map(|(s, q)| s * q).sum();
            assert_eq!(sum, p * c);
        }
    }

    #[test]
    fn weak_keys_are_refused() {
        let identity = EIGHT_TORSION[0].compress().0;
        assert!(check_public_key(&identity)
            .err()
            .unwrap()
            .contains("small order"));
        let a = ED25519_BASEPOINT_POINT * Scalar::from(7u64);
        assert!(check_public_key(&a.compress().0).is_ok());
        let mixed = (a + EIGHT_TORSION[1]).compress().0;
        assert!(check_public_key(&mixed).err().unwrap().contains("torsion"));
        let mut non_canonical = P;
        non_canonical[0] += 1; // y = p + 1, the point y = 1 again
        assert!(check_public_key(&non_canonical).is_err());
        assert!(check_public_key(&[1u8; 31]).is_err());
    }

    /// Good signatures of three keys, and the same with one message swapped.
    fn signed_jobs() -> (Vec<PublicKey>, Vec<Vec<u8>>, Vec<[u8; 64]>) {
        let signers: Vec<ed25519_zebra::SigningKey> = (1..=3u8)
            .map(|i| ed25519_zebra::SigningKey::from([i; 32]))
            .collect();
        let keys = signers
            .iter()
            .map(|sk| check_public_key(VerificationKey::from(sk).as_ref()).unwrap())
            .collect();
        let messages: Vec<Vec<u8>> = (0..12).map(|n| format!("m{n}").into_bytes()).collect();
        let sigs = messages
            .iter()
            .enumerate()
            .map(|(n, m)| signers[n % 3].sign(m).to_bytes())
            .collect();
        (keys, messages, sigs)
    }

    #[test]
    fn the_batch_equation_holds_exactly_when_every_signature_does() {
        let (keys, messages, sigs) = signed_jobs();
        let mut jobs: Vec<Job<'_>> = (0..sigs.len())
            .map(|n| Job {
                key: &keys[n % 3],
                message: &messages[n],
                signature: &sigs[n],
            })
            .collect();
        let terms = |jobs: &[Job<'_>]| -> Vec<bool> {
            let t: Vec<Terms<'_>> = Terms::of_all(jobs).into_iter().flatten().collect();
            assert_eq!(t.len(), jobs.len(), "every signature is well formed");
            let all: Vec<&Terms<'_>> = t.iter().collect();
            let mut holds: Vec<bool> = t.iter().map(Terms::hold_alone).collect();
            holds.push(batch_equation_holds(&all));
            holds
        };
        assert!(terms(&jobs).iter().all(|h| *h), "good signatures");
        jobs[5].message = b"another message";
        let holds = terms(&jobs);
        assert!(
            !holds[5] && !holds[12],
            "one bad signature fails alone and in the batch"
        );
        assert_eq!(holds.iter().filter(|h| **h).count(), 11);
    }

    #[test]
    fn s_must_be_below_l() {
        let mut below = L;
        below[0] -= 1;
        assert!(less_than(&below, &L));
        assert!(!less_than(&L, &L));
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity, canonical
        sig[32..].copy_from_slice(&L);
        assert!(signature_of(&sig).is_none());
        sig[32..].copy_from_slice(&below);
        assert!(signature_of(&sig).is_some());
    }
}
