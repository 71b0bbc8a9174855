//! Runs every vector in `schemas/token/test-vectors.json`.

use std::collections::BTreeMap;

use ricochet_token::{verify, Claims, IssuerKeys, JwkSet, TokenError, VerifyOptions};
use serde_json::Value;

fn load() -> (Value, IssuerKeys, VerifyOptions) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/token/test-vectors.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut issuers = BTreeMap::new();
    for (iss, jwks) in doc["issuers"].as_object().unwrap() {
        let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        issuers.insert(iss.clone(), set.verifying_keys().unwrap());
    }
    let opts = VerifyOptions {
        now: doc["now"].as_i64().unwrap(),
        clock_skew_secs: doc["clock_skew_secs"].as_i64().unwrap(),
    };
    (doc, issuers, opts)
}

#[test]
fn every_valid_vector_verifies_to_its_claims() {
    let (doc, keys, opts) = load();
    let valid = doc["valid"].as_array().unwrap();
    assert!(valid.len() >= 4);
    for v in valid {
        let name = v["name"].as_str().unwrap();
        let claims = verify(v["token"].as_str().unwrap(), &keys, &opts)
            .unwrap_or_else(|e| panic!("valid vector {name} refused: {e}"));
        let expected: Claims = serde_json::from_value(v["claims"].clone()).unwrap();
        assert_eq!(claims, expected, "vector {name}");
    }
}

#[test]
fn every_invalid_vector_is_refused_with_its_reason() {
    let (doc, keys, opts) = load();
    let invalid = doc["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 40);
    for v in invalid {
        let name = v["name"].as_str().unwrap();
        let err = match verify(v["token"].as_str().unwrap(), &keys, &opts) {
            Ok(_) => panic!("invalid vector {name} was accepted"),
            Err(e) => e,
        };
        assert_eq!(
            err.reason(),
            v["error"].as_str().unwrap(),
            "vector {name}: {err}"
        );
        if let Some(claim) = v.get("claim").and_then(Value::as_str) {
            let named = match &err {
                TokenError::MissingClaim(c) => *c,
                TokenError::InvalidClaim { claim, .. } => claim,
                other => panic!("vector {name}: expected a claim error, got {other}"),
            };
            assert_eq!(named, claim, "vector {name}");
        }
    }
}

#[test]
fn the_catalogue_covers_every_reason() {
    let (doc, _, _) = load();
    for reason in TokenError::REASONS {
        assert!(
            doc["invalid"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["error"] == *reason),
            "no vector for reason {reason}"
        );
    }
}

#[test]
fn every_invalid_key_is_refused_with_its_reason() {
    let (doc, _, _) = load();
    let keys = doc["invalid_keys"].as_array().unwrap();
    assert!(keys.len() >= 4);
    for v in keys {
        let name = v["name"].as_str().unwrap();
        let set = serde_json::json!({ "keys": [v["jwk"]] }).to_string();
        let err = JwkSet::from_json(&set)
            .and_then(|s| s.verifying_keys())
            .expect_err(name)
            .to_string();
        let why = v["why"].as_str().unwrap();
        assert!(err.contains(why), "key vector {name}: {err}");
    }
}

#[test]
fn batch_verification_gives_every_vector_its_verdict() {
    let (doc, keys, opts) = load();
    let all: Vec<&Value> = doc["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(doc["invalid"].as_array().unwrap())
        .collect();
    let tokens: Vec<&str> = all.iter().map(|v| v["token"].as_str().unwrap()).collect();
    let batched = ricochet_token::verify_many(&tokens, &keys, &opts);
    for ((v, token), got) in all.iter().zip(&tokens).zip(batched) {
        let single = verify(token, &keys, &opts);
        assert_eq!(
            got.map_err(|e| e.to_string()),
            single.map_err(|e| e.to_string()),
            "vector {}",
            v["name"]
        );
    }
}
