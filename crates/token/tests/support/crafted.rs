//! Hand-made Ed25519 signatures for the edge cases of Ricochet's verification
//! rule: what the rule must refuse (s ≥ L, non-canonical R) and what it
//! accepts although a cofactorless verifier would not (R with a torsion
//! component). Shared by the vector generator and the tests; only a holder of
//! the private key can make the torsion case, so it is a rule choice, not a
//! forgery.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use ricochet_token::SigningKey;

/// The key's secret scalar `a` and public encoding `A`.
fn secret(key: &SigningKey) -> (Scalar, [u8; 32]) {
    let jwk = key.private_jwk();
    let seed = URL_SAFE_NO_PAD
        .decode(jwk.d.expect("a private JWK"))
        .unwrap();
    let public: [u8; 32] = URL_SAFE_NO_PAD.decode(&jwk.x).unwrap().try_into().unwrap();
    let h = ring::digest::digest(&ring::digest::SHA512, &seed);
    let scalar: [u8; 32] = h.as_ref()[..32].try_into().unwrap();
    (Scalar::from_bytes_mod_order(clamp_integer(scalar)), public)
}

/// `k = SHA-512(R ‖ A ‖ M) mod L`.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(r);
    ctx.update(a);
    ctx.update(message);
    let wide: [u8; 64] = ctx.finish().as_ref().try_into().unwrap();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A signature whose `R` is sent as the bytes `r_enc` of the point `[r]B + T`.
fn sign_with(key: &SigningKey, message: &[u8], r: Scalar, r_enc: [u8; 32]) -> Vec<u8> {
    let (a, public) = secret(key);
    let s = r + challenge(&r_enc, &public, message) * a;
    [r_enc.as_slice(), s.as_bytes()].concat()
}

/// A deterministic nonce for the crafted signatures (test keys only).
fn nonce(message: &[u8]) -> Scalar {
    let h = ring::digest::digest(&ring::digest::SHA512, message);
    Scalar::from_bytes_mod_order_wide(&h.as_ref().try_into().unwrap())
}

/// Valid by Ricochet's (cofactored) rule, refused by a cofactorless verifier:
/// `R = [r]B + T` with `T` of order 8.
pub fn torsion_in_r(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let r = nonce(message);
    let point = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1];
    sign_with(key, message, r, point.compress().0)
}

/// The identity as `R`, sent with a non-canonical encoding (`y = p + 1`);
/// the equation holds (ZIP-215 would accept it), the encoding rule refuses it.
pub fn non_canonical_r(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let mut enc = [0xffu8; 32];
    enc[0] = 0xee;
    enc[31] = 0x7f;
    sign_with(key, message, Scalar::ZERO, enc)
}

/// The identity as `R` with the sign bit set on x = 0 ("negative zero").
pub fn negative_zero_r(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let mut enc = [0u8; 32];
    enc[0] = 1;
    enc[31] = 0x80;
    sign_with(key, message, Scalar::ZERO, enc)
}

/// `signature` with `s` replaced by `s + L`: the same value mod L, a second
/// byte form of one signature, refused because `s ≥ L`.
pub fn s_plus_l(signature: &[u8]) -> Vec<u8> {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = signature.to_vec();
    let mut carry = 0u16;
    for (byte, l) in out[32..].iter_mut().zip(L) {
        let sum = *byte as u16 + l as u16 + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// `token` with its signature replaced by `signature`.
pub fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `token`'s signing input and signature.
pub fn split(token: &str) -> (&str, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input, URL_SAFE_NO_PAD.decode(sig).unwrap())
}
