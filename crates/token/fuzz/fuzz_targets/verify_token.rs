//! Fuzzes token parsing and verification: any input must give `Ok` or a
//! `TokenError`, never a panic, nothing but a correctly signed token may
//! verify, and batch verification must give the verdict single verification gives.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ricochet_token::{verify, verify_many, IssuerKeys, JwkSet, VerifyOptions};

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

thread_local! {
    /// A valid EdDSA token of the vectors.
    static VALID: String = {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../../schemas/token/test-vectors.json")).unwrap();
        doc["valid"][0]["token"].as_str().unwrap().to_string()
    };
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let opts = VerifyOptions { now: 1_790_000_000, clock_skew_secs: 60 };
        let single = verify(token, keys(), &opts);
        if let Err(e) = &single {
            assert!(!e.reason().is_empty());
        }
        // Beside a valid token, so an Ed25519 signature goes through a batch equation.
        let valid = VALID.with(|v| v.clone());
        let batch = verify_many(&[valid.as_str(), token], keys(), &opts);
        assert!(batch[0].is_ok());
        assert_eq!(
            batch[1].as_ref().map_err(|e| e.to_string()),
            single.as_ref().map_err(|e| e.to_string())
        );
    }
});
