//! Batch verification gives exactly the verdicts of one-at-a-time
//! verification, on valid tokens and on every kind of bad one, including the
//! Ed25519 edge cases of the verification rule.

mod support {
    pub mod crafted;
}

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use ricochet_token::mint::mint;
use ricochet_token::{
    verify, verify_many, Algorithm, Claims, IssuerKeys, Nature, SigningKey, TokenRequest,
    VerifyOptions,
};
use support::crafted;

const NOW: i64 = 1_800_000_000;

struct World {
    keys: IssuerKeys,
    /// Tokens of every kind, valid and not.
    pool: Vec<String>,
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        now: NOW,
        clock_skew_secs: 60,
    }
}

fn token(key: &SigningKey, iss: &str, n: usize, iat: i64) -> String {
    let req = TokenRequest::new(
        iss,
        &format!("sender-{}", n % 3),
        Nature::Marketing,
        &format!("user{n}@mail.example"),
        iat,
    );
    mint(key, &req).unwrap().0
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let ed_a = SigningKey::generate(Algorithm::EdDSA, "a1").unwrap();
        let p256 = SigningKey::generate(Algorithm::ES256, "a2").unwrap();
        let ed_b = SigningKey::generate(Algorithm::EdDSA, "b1").unwrap();
        let impostor = SigningKey::generate(Algorithm::EdDSA, "a1").unwrap();
        let set = |ks: &[&SigningKey]| {
            ks.iter()
                .map(|k| (k.kid().to_string(), k.verifying_key()))
                .collect::<BTreeMap<_, _>>()
        };
        let keys = BTreeMap::from([
            ("esp-a.example".to_string(), set(&[&ed_a, &p256])),
            ("esp-b.example".to_string(), set(&[&ed_b])),
        ]);
        let mut pool = vec![];
        for n in 0..12 {
            pool.push(token(&ed_a, "esp-a.example", n, NOW - 100));
            pool.push(token(&ed_b, "esp-b.example", n, NOW - 100));
        }
        for n in 0..3 {
            pool.push(token(&p256, "esp-a.example", n, NOW - 100));
        }
        pool.extend(bad_tokens(&ed_a, &p256, &impostor));
        World { keys, pool }
    })
}

/// One token of each way to be refused, and the torsion case the rule accepts.
fn bad_tokens(ed: &SigningKey, p256: &SigningKey, impostor: &SigningKey) -> Vec<String> {
    let good = token(ed, "esp-a.example", 100, NOW - 100);
    let (input, sig) = crafted::split(&good);
    let mut flipped = sig.clone();
    flipped[5] ^= 0x20;
    let other = crafted::split(&token(ed, "esp-a.example", 101, NOW - 100)).1;
    let mut p256_flipped = crafted::split(&token(p256, "esp-a.example", 102, NOW - 100)).1;
    p256_flipped[40] ^= 1;
    vec![
        crafted::with_signature(&good, &flipped),
        crafted::with_signature(&good, &other),
        crafted::with_signature(&good, &crafted::s_plus_l(&sig)),
        crafted::with_signature(&good, &crafted::non_canonical_r(ed, input.as_bytes())),
        crafted::with_signature(&good, &crafted::negative_zero_r(ed, input.as_bytes())),
        crafted::with_signature(&good, &crafted::torsion_in_r(ed, input.as_bytes())),
        crafted::with_signature(&good, &sig[..63]),
        crafted::with_signature(&token(p256, "esp-a.example", 102, NOW - 100), &p256_flipped),
        token(impostor, "esp-a.example", 103, NOW - 100),
        token(ed, "esp-a.example", 104, NOW - 90 * 86_400),
        token(
            &SigningKey::generate(Algorithm::EdDSA, "zz").unwrap(),
            "esp-a.example",
            105,
            NOW,
        ),
        token(ed, "esp-c.example", 106, NOW - 100),
        "not.a.token".to_string(),
        String::new(),
    ]
}

/// A verdict as the tests compare it: the claims, or the reason and message.
fn verdict(r: Result<Claims, ricochet_token::TokenError>) -> Result<Claims, (String, String)> {
    r.map_err(|e| (e.reason().to_string(), e.to_string()))
}

fn single(tokens: &[&str]) -> Vec<Result<Claims, (String, String)>> {
    let w = world();
    tokens
        .iter()
        .map(|t| verdict(verify(t, &w.keys, &opts())))
        .collect()
}

fn batched(tokens: &[&str]) -> Vec<Result<Claims, (String, String)>> {
    let w = world();
    verify_many(tokens, &w.keys, &opts())
        .into_iter()
        .map(verdict)
        .collect()
}

#[test]
fn the_edge_cases_get_the_rules_verdicts_both_ways() {
    let w = world();
    let n = w.pool.len();
    let edge = &w.pool[n - 14..n - 8];
    let expect = [
        "bad-signature",
        "bad-signature",
        "bad-signature",
        "bad-signature",
        "bad-signature",
    ];
    let tokens: Vec<&str> = edge.iter().map(String::as_str).collect();
    for verdicts in [single(&tokens), batched(&tokens)] {
        for (v, reason) in verdicts.iter().zip(expect) {
            assert_eq!(v.as_ref().unwrap_err().0, reason);
        }
        assert!(
            verdicts[5].is_ok(),
            "R with a torsion component is valid by the cofactored rule"
        );
    }
}

#[test]
fn ring_refuses_the_torsion_case_the_cofactored_rule_accepts() {
    let ed = SigningKey::generate(Algorithm::EdDSA, "k").unwrap();
    let good = token(&ed, "esp-a.example", 1, NOW);
    let (input, _) = crafted::split(&good);
    let sig = crafted::torsion_in_r(&ed, input.as_bytes());
    let public = ed.verifying_key();
    assert!(public.verify(input.as_bytes(), &sig));
    let x = ed.public_jwk().x;
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, x).unwrap();
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw);
    assert!(ring_key.verify(input.as_bytes(), &sig).is_err());
}

#[test]
fn one_bad_signature_in_a_large_batch_is_found() {
    let w = world();
    let mut tokens: Vec<&str> = w.pool[..24].iter().map(String::as_str).collect();
    tokens.extend(w.pool[..24].iter().map(String::as_str));
    let bad = &w.pool[w.pool.len() - 14];
    tokens.insert(17, bad);
    let got = batched(&tokens);
    assert_eq!(got, single(&tokens));
    assert_eq!(got.iter().filter(|v| v.is_err()).count(), 1);
    assert!(got[17].is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_mixes_get_the_single_verdicts(picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..80)) {
        let w = world();
        let tokens: Vec<&str> = picks.iter().map(|i| w.pool[i.index(w.pool.len())].as_str()).collect();
        prop_assert_eq!(batched(&tokens), single(&tokens));
    }
}
