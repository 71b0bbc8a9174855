//! Detached JWS (RFC 7515 Appendix F) over response bodies: Ricochet signs what
//! it sends ESPs (API responses, webhooks) so they can prove where it came from.

use crate::error::TokenError;
use crate::jws::{b64_decode, b64_encode, json_object};
use crate::keys::{SigningKey, VerifyingKey};
use crate::verify::header_algorithm;

/// Signs `payload`; returns `base64url(header) ".." base64url(signature)`.
pub fn sign_detached(key: &SigningKey, payload: &[u8]) -> Result<String, TokenError> {
    let header = serde_json::json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "ricochet-response"});
    let h = b64_encode(header.to_string().as_bytes());
    let input = format!("{h}.{}", b64_encode(payload));
    let sig = key
        .sign(input.as_bytes())
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    Ok(format!("{h}..{}", b64_encode(&sig)))
}

/// Verifies a detached JWS over `payload` with the signer's keys (by `kid`).
pub fn verify_detached(
    jws: &str,
    payload: &[u8],
    keys: &std::collections::BTreeMap<String, VerifyingKey>,
) -> Result<(), TokenError> {
    let (h, sig) = jws
        .split_once("..")
        .ok_or_else(|| TokenError::Malformed("expected header..signature".into()))?;
    let header_json = b64_decode(h, "header")?;
    let header = json_object(&header_json, "header")?;
    let alg = header_algorithm(&header)?;
    let kid = header
        .get("kid")
        .and_then(|k| k.as_str())
        .ok_or(TokenError::MissingKid)?;
    let key = keys.get(kid).ok_or_else(|| TokenError::UnknownKid {
        iss: "ricochet".into(),
        kid: kid.into(),
    })?;
    if key.algorithm() != alg {
        return Err(TokenError::AlgKeyMismatch {
            alg: alg.to_string(),
            kid: kid.into(),
            key_alg: key.algorithm().to_string(),
        });
    }
    let input = format!("{h}.{}", b64_encode(payload));
    if key.verify(input.as_bytes(), &b64_decode(sig, "signature")?) {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn signs_and_verifies_and_catches_changed_bodies() {
        let key = SigningKey::generate(Algorithm::EdDSA, "r1").unwrap();
        let keys = std::collections::BTreeMap::from([("r1".to_string(), key.verifying_key())]);
        let jws = sign_detached(&key, b"{\"a\":1}").unwrap();
        assert!(verify_detached(&jws, b"{\"a\":1}", &keys).is_ok());
        assert_eq!(
            verify_detached(&jws, b"{\"a\":2}", &keys)
                .unwrap_err()
                .reason(),
            "bad-signature"
        );
    }
}
