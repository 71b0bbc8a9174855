//! JWS compact serialization (RFC 7515 §7.1): the byte-level framing only.

use crate::error::TokenError;
use crate::members::Members;
use crate::MAX_TOKEN_LEN;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A token split into its three segments, checked for framing but not yet
/// trusted. Its header and claims borrow from a [`Decoded`].
pub(crate) struct Compact<'t, 'b> {
    /// `base64url(header) "." base64url(claims)`: the bytes the signature covers.
    pub signing_input: &'t str,
    pub header: Members<'b>,
    pub claims: Members<'b>,
    pub signature: Vec<u8>,
}

/// The decoded header and claims bytes a [`Compact`] reads from.
#[derive(Default)]
pub(crate) struct Decoded {
    header: Vec<u8>,
    claims: Vec<u8>,
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64_decode(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| TokenError::Malformed(format!("{what} is not base64url: {e}")))
}

/// Checks size and character set, splits, and decodes the three segments
/// (the header and claims into `decoded`).
pub(crate) fn parse<'t, 'b>(
    token: &'t str,
    decoded: &'b mut Decoded,
) -> Result<Compact<'t, 'b>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Oversize {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if let Some(at) = first_outside_visible_ascii(token.as_bytes()) {
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
    let Decoded { header, claims } = decoded;
    *header = b64_decode(h, "header")?;
    let header = json_object(header, "header")?;
    *claims = b64_decode(c, "claims")?;
    let claims = json_object(claims, "claims")?;
    let signature = b64_decode(s, "signature")?;
    Ok(Compact {
        signing_input: &token[..h.len() + 1 + c.len()],
        header,
        claims,
        signature,
    })
}

/// The position of the first byte that is not visible ASCII (0x21-0x7e).
/// The common case, a token that is all visible, is checked 32 bytes at a
/// time without an early exit, which the compiler turns into vector
/// instructions; only a token that fails is searched byte by byte.
fn first_outside_visible_ascii(bytes: &[u8]) -> Option<usize> {
    let visible = |b: &u8| b.wrapping_sub(0x21) < 0x7e - 0x21 + 1;
    let all_visible = bytes
        .chunks(32)
        .all(|chunk| chunk.iter().fold(true, |ok, b| ok & visible(b)));
    if all_visible {
        return None;
    }
    bytes.iter().position(|b| !visible(b))
}

/// The members of the JSON object in `bytes` (duplicates refused).
pub(crate) fn json_object<'b>(bytes: &'b [u8], what: &str) -> Result<Members<'b>, TokenError> {
    Members::parse(bytes, what).map_err(TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::first_outside_visible_ascii;

    #[test]
    fn the_first_invisible_byte_is_found_wherever_it_is() {
        let token = vec![b'a'; 100];
        assert_eq!(first_outside_visible_ascii(&token), None);
        assert_eq!(first_outside_visible_ascii(b""), None);
        assert_eq!(first_outside_visible_ascii(b"!~"), None);
        for bad in [0x00, 0x20, 0x7f, 0x80, 0xff, b'\t'] {
            for at in [0, 31, 32, 63, 99] {
                let mut t = token.clone();
                t[at] = bad;
                t[99] = if at == 99 { bad } else { 0x20 };
                assert_eq!(
                    first_outside_visible_ascii(&t),
                    Some(at),
                    "{bad:#x} at {at}"
                );
            }
        }
    }
}
