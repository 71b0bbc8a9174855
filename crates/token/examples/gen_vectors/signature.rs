//! Vectors of signature and algorithm attacks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ricochet_token::mint::{sign_claims, sign_parts};
use ricochet_token::TOKEN_TYPE;
use serde_json::json;

use super::{b64, hdr, unsigned, with, Catalogue, Ctx};

/// Signature and algorithm attacks.
pub(super) fn signature_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx {
        a_ed,
        impostor,
        claims,
        good,
        ..
    } = ctx;
    // Signature and algorithm attacks.
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x01;
    cat.add(
        "flipped-signature-bit",
        "bad-signature",
        None,
        format!("{input}.{}", b64(&sig)),
        "one bit of a valid EdDSA signature flipped",
    );
    let (input, _) = good.rsplit_once('.').unwrap();
    let tampered_claims = with(claims.clone(), "sub", json!("acct-9999"));
    let tampered = format!(
        "{}.{}.{}",
        input.split('.').next().unwrap(),
        b64(tampered_claims.to_string().as_bytes()),
        good.rsplit('.').next().unwrap()
    );
    cat.add(
        "claims-changed-after-signing",
        "bad-signature",
        None,
        tampered,
        "sub rewritten, original signature kept",
    );
    cat.add(
        "signed-by-impostor-with-same-kid",
        "bad-signature",
        None,
        sign_claims(impostor, claims).unwrap(),
        "a key that is not the ESP's, claiming the ESP's kid",
    );
    cat.add(
        "alg-none",
        "alg-not-allowed",
        None,
        unsigned(&hdr("none", a_ed.kid()), claims, b""),
        "alg none with an empty signature",
    );
    cat.add(
        "alg-none-capitalized",
        "alg-not-allowed",
        None,
        unsigned(&hdr("None", a_ed.kid()), claims, b""),
        "alg None",
    );
    confusion_vectors(ctx, cat);
}

/// Algorithm confusion, foreign keys and unregistered issuers.
fn confusion_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let (a_ed, a_p256, b_ed) = (&ctx.a_ed, &ctx.a_p256, &ctx.b_ed);
    let claims = &ctx.claims;
    let hmac_token = |secret: &[u8]| {
        let h = hdr("HS256", a_ed.kid());
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        format!(
            "{input}.{}",
            b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let public_x = URL_SAFE_NO_PAD.decode(&a_ed.public_jwk().x).unwrap();
    cat.add(
        "hs256-public-key-bytes-as-secret",
        "alg-not-allowed",
        None,
        hmac_token(&public_x),
        "algorithm confusion: HMAC keyed with the ESP's raw public key",
    );
    let public_json = serde_json::to_string(&a_ed.public_jwk()).unwrap();
    cat.add(
        "hs256-public-jwk-as-secret",
        "alg-not-allowed",
        None,
        hmac_token(public_json.as_bytes()),
        "algorithm confusion: HMAC keyed with the ESP's public JWK text",
    );
    cat.add(
        "rs256",
        "alg-not-allowed",
        None,
        unsigned(&hdr("RS256", a_ed.kid()), claims, &[7u8; 256]),
        "RSA is not an allowed algorithm",
    );
    cat.add(
        "es256-header-on-eddsa-key",
        "alg-key-mismatch",
        None,
        sign_parts(a_p256, &hdr("ES256", a_ed.kid()), claims).unwrap(),
        "ES256 signature presented under the kid of an Ed25519 key",
    );
    cat.add(
        "eddsa-header-on-p256-key",
        "alg-key-mismatch",
        None,
        sign_parts(a_ed, &hdr("EdDSA", a_p256.kid()), claims).unwrap(),
        "EdDSA signature presented under the kid of a P-256 key",
    );
    cat.add(
        "unknown-kid",
        "unknown-kid",
        None,
        sign_parts(a_ed, &hdr("EdDSA", "a-retired-2024"), claims).unwrap(),
        "kid not in the issuer's key set (never published or revoked)",
    );
    cat.add(
        "kid-of-another-esp",
        "key-of-another-participant",
        None,
        sign_parts(b_ed, &hdr("EdDSA", b_ed.kid()), claims).unwrap(),
        "iss is esp-a but kid belongs to esp-b",
    );
    let c = with(claims.clone(), "iss", json!("esp-unregistered.example"));
    cat.add(
        "unknown-issuer",
        "unknown-issuer",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "iss is not a registered ESP",
    );
    cat.add(
        "missing-kid",
        "missing-kid",
        None,
        sign_parts(a_ed, &json!({"alg": "EdDSA", "typ": TOKEN_TYPE}), claims).unwrap(),
        "header without kid",
    );
    cat.add(
        "typ-jwt",
        "wrong-type",
        None,
        sign_parts(
            a_ed,
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": a_ed.kid()}),
            claims,
        )
        .unwrap(),
        "an ordinary JWT (e.g. an API bearer token) is not a complaint token",
    );
    cat.add(
        "typ-missing",
        "wrong-type",
        None,
        sign_parts(a_ed, &json!({"alg": "EdDSA", "kid": a_ed.kid()}), claims).unwrap(),
        "header without typ",
    );
    cat.add(
        "crit-header",
        "malformed",
        None,
        sign_parts(
            a_ed,
            &json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": a_ed.kid(), "crit": ["exp"]}),
            claims,
        )
        .unwrap(),
        "crit names an extension verifiers do not understand",
    );
}
