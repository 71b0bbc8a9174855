//! Recipient binding (`rcb`): ties a token to one recipient address without
//! revealing the address. `rcb = base64url(SHA-256(jti ‖ lower-case address)[..16])`.
//! A provider that knows the recipient can prove it by recomputing the value.

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use crate::jws::b64_encode;

/// Length of an encoded binding: 16 bytes in base64url without padding.
pub const BINDING_LEN: usize = 22;

/// Computes the `rcb` value for a token id and a recipient address.
pub fn recipient_binding(jti: &str, address: &str) -> String {
    let mut input = Vec::with_capacity(jti.len() + address.len());
    input.extend_from_slice(jti.as_bytes());
    input.extend_from_slice(address.trim().to_lowercase().as_bytes());
    b64_encode(&digest(&SHA256, &input).as_ref()[..16])
}

/// Compares two binding values in constant time.
pub fn bindings_match(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_case_insensitive_and_specific() {
        let a = recipient_binding("AAAAAAAAAAAAAAAAAAAAAA", "Alice@Example.com");
        assert_eq!(a.len(), BINDING_LEN);
        assert!(bindings_match(
            &a,
            &recipient_binding("AAAAAAAAAAAAAAAAAAAAAA", "alice@example.com")
        ));
        assert!(!bindings_match(
            &a,
            &recipient_binding("AAAAAAAAAAAAAAAAAAAAAA", "bob@example.com")
        ));
        assert!(!bindings_match(
            &a,
            &recipient_binding("BAAAAAAAAAAAAAAAAAAAAA", "alice@example.com")
        ));
    }

    #[test]
    fn known_value() {
        // SHA-256("AAAAAAAAAAAAAAAAAAAAAAalice@example.com"), first 16 bytes, base64url.
        assert_eq!(
            recipient_binding("AAAAAAAAAAAAAAAAAAAAAA", "alice@example.com"),
            "dIJOFEFDZaTduMvEA5D72w"
        );
    }
}
