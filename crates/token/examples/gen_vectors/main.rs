//! Writes the complaint-token test vectors (`schemas/token/test-vectors.json`) to stdout.
//!
//! Run: `cargo run -p ricochet-token --example gen_vectors > schemas/token/test-vectors.json`.
//! The keys are generated afresh each run and published in the file, private
//! halves included: they are test keys, never to be registered anywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ricochet_token::binding::recipient_binding;
use ricochet_token::mint::sign_claims;
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

/// The keys, issuers and base token every vector is built from.
struct Ctx {
    a_ed: SigningKey,
    a_p256: SigningKey,
    b_ed: SigningKey,
    /// Another key under `a_ed`'s kid.
    impostor: SigningKey,
    a: &'static str,
    b: &'static str,
    claims: Value,
    /// A valid EdDSA token of `claims`.
    good: String,
}

/// The invalid vectors, in order.
#[derive(Default)]
struct Catalogue {
    invalid: Vec<Value>,
}

impl Catalogue {
    fn add(&mut self, name: &str, error: &str, claim: Option<&str>, token: String, why: &str) {
        let mut v = json!({"name": name, "error": error, "token": token, "description": why});
        if let Some(c) = claim {
            v["claim"] = json!(c);
        }
        self.invalid.push(v);
    }
}

fn jti(n: u8) -> String {
    b64(&[n; 16])
}

fn hdr(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": TOKEN_TYPE, "kid": kid})
}

/// The valid vectors.
fn valid_vectors(ctx: &Ctx) -> Vec<Value> {
    let Ctx {
        a_ed,
        a_p256,
        b_ed,
        a,
        b,
        claims,
        ..
    } = ctx;
    let mut valid = vec![];
    let mut add_valid = |name: &str, token: String, claims: &Value| {
        valid.push(json!({"name": name, "token": token, "claims": claims}));
    };
    add_valid("eddsa", sign_claims(a_ed, claims).unwrap(), claims);
    let c = base_claims(a, &jti(2));
    add_valid("es256", sign_claims(a_p256, &c).unwrap(), &c);
    let c = without(base_claims(b, &jti(3)), "cmp");
    add_valid("eddsa-no-campaign", sign_claims(b_ed, &c).unwrap(), &c);
    let c = with(
        with(base_claims(a, &jti(4)), "nat", json!("transactional")),
        "rdm",
        json!("xn--bcher-kva.example"),
    );
    add_valid("idna-recipient-domain", sign_claims(a_ed, &c).unwrap(), &c);
    let c = with(base_claims(a, &jti(9)), "dom", json!("shop.example"));
    add_valid("from-domain", sign_claims(a_ed, &c).unwrap(), &c);
    let c = with(
        base_claims(a, &jti(10)),
        "dom",
        json!("xn--bcher-kva.example"),
    );
    add_valid(
        "idna-from-domain-es256",
        sign_claims(a_p256, &c).unwrap(),
        &c,
    );
    let c = with(
        with(base_claims(a, &jti(5)), "iat", json!(NOW - 60 * DAY + 10)),
        "exp",
        json!(NOW + 10),
    );
    add_valid(
        "max-lifetime-near-expiry",
        sign_claims(a_p256, &c).unwrap(),
        &c,
    );
    valid
}

mod claims;
#[path = "../../tests/support/crafted.rs"]
mod crafted;
mod edge;
mod signature;

use claims::{claims_vectors, framing_vectors, time_vectors};
use edge::{edge_signature_vectors, invalid_key_vectors, torsion_vector};
use signature::signature_vectors;

fn main() {
    let a_ed = SigningKey::generate(Algorithm::EdDSA, "a-ed25519-2026").unwrap();
    let claims = base_claims("esp-a.example", &jti(1));
    let ctx = Ctx {
        good: sign_claims(&a_ed, &claims).unwrap(),
        a_ed,
        a_p256: SigningKey::generate(Algorithm::ES256, "a-p256-2026").unwrap(),
        b_ed: SigningKey::generate(Algorithm::EdDSA, "b-ed25519-2026").unwrap(),
        impostor: SigningKey::generate(Algorithm::EdDSA, "a-ed25519-2026").unwrap(),
        a: "esp-a.example",
        b: "esp-b.example",
        claims,
    };
    let mut valid = valid_vectors(&ctx);
    valid.push(torsion_vector(&ctx));
    let mut cat = Catalogue::default();
    signature_vectors(&ctx, &mut cat);
    edge_signature_vectors(&ctx, &mut cat);
    time_vectors(&ctx, &mut cat);
    claims_vectors(&ctx, &mut cat);
    framing_vectors(&ctx, &mut cat);
    let Ctx {
        a_ed,
        a_p256,
        b_ed,
        a,
        b,
        ..
    } = &ctx;
    let invalid = cat.invalid;
    let mut issuers = serde_json::Map::new();
    issuers.insert(
        a.to_string(),
        json!(JwkSet {
            keys: vec![a_ed.public_jwk(), a_p256.public_jwk()]
        }),
    );
    issuers.insert(
        b.to_string(),
        json!(JwkSet {
            keys: vec![b_ed.public_jwk()]
        }),
    );
    let doc = json!({
        "description": "Ricochet complaint-token test vectors. Verify each token at `now` with `clock_skew_secs`, trusting exactly the keys in `issuers`. Every `valid` token must verify to its `claims`; every `invalid` one must be refused with `error` (and, where given, naming `claim`); every key of `invalid_keys` must be refused when a key set is read, with an error that says `why`. The private keys are published for reproduction only.",
        "now": NOW,
        "clock_skew_secs": 60,
        "issuers": issuers,
        "private_keys_for_tests_only": [a_ed.private_jwk(), a_p256.private_jwk(), b_ed.private_jwk()],
        "valid": valid,
        "invalid": invalid,
        "invalid_keys": invalid_key_vectors(),
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
