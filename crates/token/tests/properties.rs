//! Property tests: minted tokens verify, and no single-byte change survives verification.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use ricochet_token::{
    mint, verify, Algorithm, IssuerKeys, Nature, SigningKey, TokenRequest, VerifyOptions,
};

const NOW: i64 = 1_790_000_000;

fn keys() -> &'static (SigningKey, SigningKey, IssuerKeys) {
    static KEYS: OnceLock<(SigningKey, SigningKey, IssuerKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = SigningKey::generate(Algorithm::EdDSA, "ed").unwrap();
        let p = SigningKey::generate(Algorithm::ES256, "p").unwrap();
        let set = BTreeMap::from([
            ("ed".to_string(), ed.verifying_key()),
            ("p".to_string(), p.verifying_key()),
        ]);
        (ed, p, BTreeMap::from([("esp.example".to_string(), set)]))
    })
}

fn request() -> impl Strategy<Value = (bool, TokenRequest)> {
    (
        any::<bool>(),
        "[A-Za-z0-9._:@+-]{1,40}",
        prop::sample::select(Nature::ALL.to_vec()),
        prop::option::of("[a-z0-9-]{1,30}"),
        "[a-z0-9.]{1,20}@[a-z]{1,12}\\.(example|com|org)",
        prop::option::of("[A-Za-z0-9]{1,20}\\.(Example|com|org)"),
        0i64..86_400,
        60i64..(60 * 86_400),
    )
        .prop_map(|(p256, sub, nat, cmp, rcpt, dom, age, life)| {
            let mut r = TokenRequest::new("esp.example", &sub, nat, &rcpt, NOW - age);
            r.cmp = cmp;
            r.dom = dom;
            r.lifetime_secs = life.max(age + 120);
            (p256, r)
        })
}

const OPTS: VerifyOptions = VerifyOptions {
    now: NOW,
    clock_skew_secs: 60,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn minted_tokens_verify_to_their_claims((p256, req) in request()) {
        let (ed, p, set) = keys();
        let (token, claims) = mint(if p256 { p } else { ed }, &req).unwrap();
        prop_assert!(token.len() <= ricochet_token::MAX_TOKEN_LEN);
        prop_assert_eq!(verify(&token, set, &OPTS).unwrap(), claims.clone());
        // The From domain is signed as its lower-case A-label, or not at all.
        prop_assert_eq!(claims.dom, req.dom.map(|d| d.to_lowercase()));
    }

    #[test]
    fn any_changed_byte_is_refused((p256, req) in request(), at in any::<prop::sample::Index>(), with in 0x20u8..0x7f) {
        let (ed, p, set) = keys();
        let (token, _) = mint(if p256 { p } else { ed }, &req).unwrap();
        let mut bytes = token.into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != with);
        bytes[i] = with;
        let forged = String::from_utf8(bytes).unwrap();
        prop_assert!(verify(&forged, set, &OPTS).is_err(), "accepted {}", forged);
    }
}
