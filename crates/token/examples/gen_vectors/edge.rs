//! Vectors of the Ed25519 verification rule's edge cases (see
//! "Ed25519 verification rule" in `schemas/complaint-token.md`): signature
//! encodings the rule refuses, the torsion case it accepts, and public keys
//! the registry refuses.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use ricochet_token::mint::sign_claims;
use serde_json::{json, Value};

use super::crafted;
use super::{b64, base_claims, jti, Catalogue, Ctx};

/// Signatures that verify by some Ed25519 rule but not by Ricochet's.
pub(super) fn edge_signature_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx { a_ed, good, .. } = ctx;
    let (input, sig) = crafted::split(good);
    let msg = input.as_bytes();
    cat.add(
        "signature-s-not-canonical",
        "bad-signature",
        None,
        crafted::with_signature(good, &crafted::s_plus_l(&sig)),
        "a valid signature with s replaced by s + L (same value mod L): s must be below L",
    );
    cat.add(
        "signature-r-non-canonical",
        "bad-signature",
        None,
        crafted::with_signature(good, &crafted::non_canonical_r(a_ed, msg)),
        "R is the identity encoded as y = p + 1; the equation holds (ZIP-215 accepts it), but R must be canonically encoded",
    );
    cat.add(
        "signature-r-negative-zero",
        "bad-signature",
        None,
        crafted::with_signature(good, &crafted::negative_zero_r(a_ed, msg)),
        "R is the identity with the sign bit set on x = 0; the equation holds, the encoding is not canonical",
    );
    cat.add(
        "signature-63-bytes",
        "bad-signature",
        None,
        crafted::with_signature(good, &sig[..63]),
        "an Ed25519 signature is 64 bytes",
    );
}

/// Valid by the cofactored rule, refused by a cofactorless verifier (such as
/// ring's): only the holder of the private key can make one.
pub(super) fn torsion_vector(ctx: &Ctx) -> Value {
    let claims = base_claims(ctx.a, &jti(11));
    let token = sign_claims(&ctx.a_ed, &claims).unwrap();
    let (input, _) = crafted::split(&token);
    let sig = crafted::torsion_in_r(&ctx.a_ed, input.as_bytes());
    json!({
        "name": "eddsa-torsion-in-r",
        "token": crafted::with_signature(&token, &sig),
        "claims": claims,
        "description": "R = [r]B + T with T of order 8, made with the ESP's private key: [8][s]B = [8]R + [8][k]A holds, [s]B = R + [k]A does not. Valid by Ricochet's (cofactored) rule; a cofactorless verifier refuses it.",
    })
}

/// Ed25519 public keys a key set may not contain.
pub(super) fn invalid_key_vectors() -> Vec<Value> {
    let key = |x: [u8; 32]| json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": b64(&x)});
    let honest = ED25519_BASEPOINT_POINT * Scalar::from(0x5eed_u64);
    let mut y_p_plus_1 = [0xffu8; 32];
    y_p_plus_1[0] = 0xee;
    y_p_plus_1[31] = 0x7f;
    vec![
        json!({"name": "key-identity", "jwk": key(EIGHT_TORSION[0].compress().0), "why": "small order",
               "description": "the identity point: with s = 0 and R = identity it verifies every message"}),
        json!({"name": "key-order-8", "jwk": key(EIGHT_TORSION[1].compress().0), "why": "small order",
               "description": "a point of order 8"}),
        json!({"name": "key-mixed-order", "jwk": key((honest + EIGHT_TORSION[1]).compress().0), "why": "torsion",
               "description": "an honest key plus a point of order 8: outside the prime-order subgroup"}),
        json!({"name": "key-non-canonical", "jwk": key(y_p_plus_1), "why": "canonical",
               "description": "y = p + 1 (the identity again), not a canonical encoding"}),
    ]
}
