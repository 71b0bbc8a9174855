//! JWS compact serialization (RFC 7515 §7.1): the byte-level framing only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::MAX_TOKEN_LEN;

/// A token split into its three segments, checked for framing but not yet trusted.
pub(crate) struct Compact<'a> {
    /// `base64url(header) "." base64url(claims)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub signature: Vec<u8>,
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64_decode(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| TokenError::Malformed(format!("{what} is not base64url: {e}")))
}

/// Checks size and character set, splits, and decodes the three segments.
pub(crate) fn parse(token: &str) -> Result<Compact<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Oversize {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if let Some(at) = token.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        // A space or tab is ASCII but never part of a token: treat as trailing garbage.
        if token.as_bytes()[at].is_ascii() {
            return Err(TokenError::Malformed(format!(
                "unexpected whitespace or control character at byte {at}"
            )));
        }
        return Err(TokenError::NonAscii { at });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(format!(
            "expected 3 dot-separated segments, found {}",
            token.split('.').count()
        )));
    };
    let header = json_object(&b64_decode(h, "header")?, "header")?;
    let claims = json_object(&b64_decode(c, "claims")?, "claims")?;
    let signature = b64_decode(s, "signature")?;
    Ok(Compact {
        signing_input: &token[..h.len() + 1 + c.len()],
        header,
        claims,
        signature,
    })
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, TokenError> {
    serde_json::from_slice::<StrictObject>(bytes)
        .map(|o| o.0)
        .map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

/// A JSON object that refuses duplicate member names: RFC 7515 §4 lets a parser
/// take the last one, which lets a forger show two readers two different values.
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate member {k:?}")));
                    }
                    map.insert(k, v);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(Visitor)
    }
}
