//! Writes the complaint-token test vectors (`schemas/token/test-vectors.json`) to stdout.
//!
//! Run: `cargo run -p ricochet-token --example gen_vectors > schemas/token/test-vectors.json`.
//! The keys are generated afresh each run and published in the file, private
//! halves included: they are test keys, never to be registered anywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ricochet_token::binding::recipient_binding;
use ricochet_token::mint::{sign_claims, sign_parts, sign_raw};
use ricochet_token::{Algorithm, JwkSet, SigningKey, TOKEN_TYPE};
use serde_json::{json, Value};

const NOW: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn base_claims(iss: &str, jti: &str) -> Value {
    json!({
        "iss": iss, "sub": "acct-1042", "jti": jti,
        "iat": NOW - 3600, "exp": NOW - 3600 + 14 * DAY,
        "nat": "newsletter", "cmp": "2026-09-weekly", "rdm": "mail.example",
        "rcb": recipient_binding(jti, "alice@mail.example"),
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// A token with a hand-made header and signature bytes (for `none` and HMAC attacks).
fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn main() {
    let a_ed = SigningKey::generate(Algorithm::EdDSA, "a-ed25519-2026").unwrap();
    let a_p256 = SigningKey::generate(Algorithm::ES256, "a-p256-2026").unwrap();
    let b_ed = SigningKey::generate(Algorithm::EdDSA, "b-ed25519-2026").unwrap();
    let impostor = SigningKey::generate(Algorithm::EdDSA, "a-ed25519-2026").unwrap();
    let (a, b) = ("esp-a.example", "esp-b.example");
    let jti = |n: u8| b64(&[n; 16]);
    let claims = base_claims(a, &jti(1));

    let mut valid = vec![];
    let mut add_valid = |name: &str, token: String, claims: &Value| {
        valid.push(json!({"name": name, "token": token, "claims": claims}));
    };
    add_valid("eddsa", sign_claims(&a_ed, &claims).unwrap(), &claims);
    let c = base_claims(a, &jti(2));
    add_valid("es256", sign_claims(&a_p256, &c).unwrap(), &c);
    let c = without(base_claims(b, &jti(3)), "cmp");
    add_valid("eddsa-no-campaign", sign_claims(&b_ed, &c).unwrap(), &c);
    let c = with(
        with(base_claims(a, &jti(4)), "nat", json!("transactional")),
        "rdm",
        json!("xn--bcher-kva.example"),
    );
    add_valid("idna-recipient-domain", sign_claims(&a_ed, &c).unwrap(), &c);
    let c = with(base_claims(a, &jti(9)), "dom", json!("shop.example"));
    add_valid("from-domain", sign_claims(&a_ed, &c).unwrap(), &c);
    let c = with(
        base_claims(a, &jti(10)),
        "dom",
        json!("xn--bcher-kva.example"),
    );
    add_valid(
        "idna-from-domain-es256",
        sign_claims(&a_p256, &c).unwrap(),
        &c,
    );
    let c = with(
        with(base_claims(a, &jti(5)), "iat", json!(NOW - 60 * DAY + 10)),
        "exp",
        json!(NOW + 10),
    );
    add_valid(
        "max-lifetime-near-expiry",
        sign_claims(&a_p256, &c).unwrap(),
        &c,
    );

    let mut invalid = vec![];
    let mut add = |name: &str, error: &str, claim: Option<&str>, token: String, why: &str| {
        let mut v = json!({"name": name, "error": error, "token": token, "description": why});
        if let Some(c) = claim {
            v["claim"] = json!(c);
        }
        invalid.push(v);
    };
    let good = sign_claims(&a_ed, &claims).unwrap();
    let hdr = |alg: &str, kid: &str| json!({"alg": alg, "typ": TOKEN_TYPE, "kid": kid});

    // Signature and algorithm attacks.
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x01;
    add(
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
    add(
        "claims-changed-after-signing",
        "bad-signature",
        None,
        tampered,
        "sub rewritten, original signature kept",
    );
    add(
        "signed-by-impostor-with-same-kid",
        "bad-signature",
        None,
        sign_claims(&impostor, &claims).unwrap(),
        "a key that is not the ESP's, claiming the ESP's kid",
    );
    add(
        "alg-none",
        "alg-not-allowed",
        None,
        unsigned(&hdr("none", a_ed.kid()), &claims, b""),
        "alg none with an empty signature",
    );
    add(
        "alg-none-capitalized",
        "alg-not-allowed",
        None,
        unsigned(&hdr("None", a_ed.kid()), &claims, b""),
        "alg None",
    );
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
    add(
        "hs256-public-key-bytes-as-secret",
        "alg-not-allowed",
        None,
        hmac_token(&public_x),
        "algorithm confusion: HMAC keyed with the ESP's raw public key",
    );
    let public_json = serde_json::to_string(&a_ed.public_jwk()).unwrap();
    add(
        "hs256-public-jwk-as-secret",
        "alg-not-allowed",
        None,
        hmac_token(public_json.as_bytes()),
        "algorithm confusion: HMAC keyed with the ESP's public JWK text",
    );
    add(
        "rs256",
        "alg-not-allowed",
        None,
        unsigned(&hdr("RS256", a_ed.kid()), &claims, &[7u8; 256]),
        "RSA is not an allowed algorithm",
    );
    add(
        "es256-header-on-eddsa-key",
        "alg-key-mismatch",
        None,
        sign_parts(&a_p256, &hdr("ES256", a_ed.kid()), &claims).unwrap(),
        "ES256 signature presented under the kid of an Ed25519 key",
    );
    add(
        "eddsa-header-on-p256-key",
        "alg-key-mismatch",
        None,
        sign_parts(&a_ed, &hdr("EdDSA", a_p256.kid()), &claims).unwrap(),
        "EdDSA signature presented under the kid of a P-256 key",
    );
    add(
        "unknown-kid",
        "unknown-kid",
        None,
        sign_parts(&a_ed, &hdr("EdDSA", "a-retired-2024"), &claims).unwrap(),
        "kid not in the issuer's key set (never published or revoked)",
    );
    add(
        "kid-of-another-esp",
        "key-of-another-participant",
        None,
        sign_parts(&b_ed, &hdr("EdDSA", b_ed.kid()), &claims).unwrap(),
        "iss is esp-a but kid belongs to esp-b",
    );
    let c = with(claims.clone(), "iss", json!("esp-unregistered.example"));
    add(
        "unknown-issuer",
        "unknown-issuer",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "iss is not a registered ESP",
    );
    add(
        "missing-kid",
        "missing-kid",
        None,
        sign_parts(&a_ed, &json!({"alg": "EdDSA", "typ": TOKEN_TYPE}), &claims).unwrap(),
        "header without kid",
    );
    add(
        "typ-jwt",
        "wrong-type",
        None,
        sign_parts(
            &a_ed,
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": a_ed.kid()}),
            &claims,
        )
        .unwrap(),
        "an ordinary JWT (e.g. an API bearer token) is not a complaint token",
    );
    add(
        "typ-missing",
        "wrong-type",
        None,
        sign_parts(&a_ed, &json!({"alg": "EdDSA", "kid": a_ed.kid()}), &claims).unwrap(),
        "header without typ",
    );
    add(
        "crit-header",
        "malformed",
        None,
        sign_parts(
            &a_ed,
            &json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": a_ed.kid(), "crit": ["exp"]}),
            &claims,
        )
        .unwrap(),
        "crit names an extension verifiers do not understand",
    );

    // Time.
    let c = with(
        with(claims.clone(), "iat", json!(NOW - 20 * DAY)),
        "exp",
        json!(NOW - 6 * DAY),
    );
    add(
        "expired",
        "expired",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "exp six days ago",
    );
    let c = with(
        with(claims.clone(), "iat", json!(NOW + 3600)),
        "exp",
        json!(NOW + 3600 + DAY),
    );
    add(
        "not-yet-valid",
        "not-yet-valid",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "iat one hour in the future, beyond the 60 s skew",
    );
    let c = with(claims.clone(), "exp", json!(NOW - 3600 + 61 * DAY));
    add(
        "lifetime-61-days",
        "lifetime-too-long",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "exp - iat is 61 days, more than the 60 allowed",
    );
    let c = with(claims.clone(), "exp", json!(NOW - 3600));
    add(
        "exp-equals-iat",
        "invalid-claim",
        Some("exp"),
        sign_claims(&a_ed, &c).unwrap(),
        "exp not after iat",
    );

    // Claims.
    add(
        "bad-nature",
        "bad-nature",
        None,
        sign_claims(&a_ed, &with(claims.clone(), "nat", json!("spam"))).unwrap(),
        "nat is not a declared nature",
    );
    add(
        "nature-wrong-case",
        "bad-nature",
        None,
        sign_claims(&a_ed, &with(claims.clone(), "nat", json!("Marketing"))).unwrap(),
        "natures are lower-case",
    );
    for claim in ["iss", "sub", "jti", "iat", "exp", "nat", "rdm", "rcb"] {
        add(
            &format!("missing-{claim}"),
            "missing-claim",
            Some(claim),
            sign_claims(&a_ed, &without(claims.clone(), claim)).unwrap(),
            &format!("claims without {claim}"),
        );
    }
    let bad: [(&str, &str, Value, &str); 12] = [
        ("jti-too-short", "jti", json!("Zm9vYmFy"), "48-bit jti"),
        (
            "jti-not-base64url",
            "jti",
            json!("AAAAAAAAAAAAAAAAAAAAA+"),
            "jti with '+'",
        ),
        (
            "rdm-upper-case",
            "rdm",
            json!("Mail.Example"),
            "recipient domain not lower-case",
        ),
        (
            "rdm-u-label",
            "rdm",
            json!("bücher.example"),
            "recipient domain not in A-label form",
        ),
        (
            "rdm-single-label",
            "rdm",
            json!("localhost"),
            "recipient domain with one label",
        ),
        (
            "dom-upper-case",
            "dom",
            json!("Shop.Example"),
            "From domain not lower-case",
        ),
        (
            "dom-u-label",
            "dom",
            json!("bücher.example"),
            "From domain not in A-label form",
        ),
        (
            "dom-single-label",
            "dom",
            json!("localhost"),
            "From domain with one label",
        ),
        (
            "dom-not-a-string",
            "dom",
            json!(42),
            "From domain as a number",
        ),
        (
            "rcb-wrong-length",
            "rcb",
            json!("AAAA"),
            "binding is not 16 bytes",
        ),
        ("iat-string", "iat", json!("1789996400"), "iat as a string"),
        (
            "sub-with-slash",
            "sub",
            json!("acct/1042"),
            "sub outside its character set",
        ),
    ];
    for (name, claim, value, why) in bad {
        add(
            name,
            "invalid-claim",
            Some(claim),
            sign_claims(&a_ed, &with(claims.clone(), claim, value)).unwrap(),
            why,
        );
    }
    let c = with(claims.clone(), "iss", json!("ESP-A.example"));
    add(
        "iss-upper-case",
        "unknown-issuer",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "issuer ids are matched exactly: upper case names no registered ESP",
    );
    let dup = claims
        .to_string()
        .replacen('{', "{\"sub\":\"acct-0001\",", 1);
    add(
        "duplicate-claim",
        "malformed",
        None,
        sign_raw(&a_ed, &hdr("EdDSA", a_ed.kid()).to_string(), &dup).unwrap(),
        "sub appears twice; readers could disagree on which counts",
    );

    // Framing.
    let c = with(claims.clone(), "pad", json!("x".repeat(800)));
    add(
        "oversize",
        "oversize",
        None,
        sign_claims(&a_ed, &c).unwrap(),
        "validly signed but longer than one header line allows",
    );
    let mid = good.len() / 2;
    add(
        "non-ascii",
        "non-ascii",
        None,
        format!("{}é{}", &good[..mid], &good[mid..]),
        "a non-ASCII character inside the token",
    );
    add(
        "trailing-segment",
        "malformed",
        None,
        format!("{good}.AAAA"),
        "a fourth segment after the signature",
    );
    add(
        "trailing-text",
        "malformed",
        None,
        format!("{good} trailing"),
        "text after the token on the same line",
    );
    add(
        "trailing-newline",
        "malformed",
        None,
        format!("{good}\n"),
        "a newline after the token",
    );
    add(
        "two-segments",
        "malformed",
        None,
        good.rsplit_once('.').unwrap().0.to_string(),
        "signature segment missing",
    );
    add("empty", "malformed", None, String::new(), "empty string");
    add(
        "header-not-base64url",
        "malformed",
        None,
        format!("!!!{}", &good[3..]),
        "header segment is not base64url",
    );
    add(
        "padded-base64",
        "malformed",
        None,
        good.replacen('.', "==.", 1),
        "base64 padding is not allowed in JWS",
    );
    add(
        "header-not-json",
        "malformed",
        None,
        format!("{}.{}", b64(b"not json"), good.split_once('.').unwrap().1),
        "header decodes to non-JSON",
    );
    add(
        "claims-not-object",
        "malformed",
        None,
        sign_raw(&a_ed, &hdr("EdDSA", a_ed.kid()).to_string(), "[1,2,3]").unwrap(),
        "claims are a JSON array",
    );

    let mut issuers = serde_json::Map::new();
    issuers.insert(
        a.into(),
        json!(JwkSet {
            keys: vec![a_ed.public_jwk(), a_p256.public_jwk()]
        }),
    );
    issuers.insert(
        b.into(),
        json!(JwkSet {
            keys: vec![b_ed.public_jwk()]
        }),
    );
    let doc = json!({
        "description": "Ricochet complaint-token test vectors. Verify each token at `now` with `clock_skew_secs`, trusting exactly the keys in `issuers`. Every `valid` token must verify to its `claims`; every `invalid` one must be refused with `error` (and, where given, naming `claim`). The private keys are published for reproduction only.",
        "now": NOW,
        "clock_skew_secs": 60,
        "issuers": issuers,
        "private_keys_for_tests_only": [a_ed.private_jwk(), a_p256.private_jwk(), b_ed.private_jwk()],
        "valid": valid,
        "invalid": invalid,
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
