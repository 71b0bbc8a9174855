//! Complaint records as JSON, written directly: ingest writes one per
//! accepted complaint, and `serde_json`'s byte-at-a-time escaping of the
//! ~900 bytes of strings in each was a tenth of ingest's CPU outside
//! signature checks. The bytes are exactly what `serde_json::to_vec` gives
//! (a property test holds the two together), so readers need not know.

use std::io::Write;

use crate::records::ComplaintRecord;

impl ComplaintRecord {
    /// The record as compact JSON, byte for byte what `serde_json::to_vec` writes.
    pub fn to_json(&self) -> Vec<u8> {
        // The token plus ~500 bytes of other fields: one allocation.
        let mut out = Vec::with_capacity(self.token.len() + 512);
        self.write_json(&mut out);
        out
    }

    /// Appends [`to_json`](Self::to_json)'s bytes to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(self.token.len() + 512);
        out.push(b'{');
        string(out, "jti", &self.jti, ',');
        string(out, "esp", &self.esp, ',');
        string(out, "sender", &self.sender, ',');
        string(out, "provider", &self.provider, ',');
        string(out, "code", &self.code, ',');
        string(out, "nature", &self.nature, ',');
        optional(out, "campaign", self.campaign.as_deref());
        string(out, "recipient_domain", &self.recipient_domain, ',');
        optional(out, "from_domain", self.from_domain.as_deref());
        optional(out, "reporter", self.reporter.as_deref());
        optional(out, "rcb", self.rcb.as_deref());
        let proven = if self.recipient_proven {
            "true"
        } else {
            "false"
        };
        raw(out, "recipient_proven", proven);
        number(out, "token_iat", self.token_iat);
        number(out, "token_exp", self.token_exp);
        number(out, "reported_at_ms", self.reported_at_ms);
        number(out, "received_at_ms", self.received_at_ms);
        string(out, "token", &self.token, '}');
    }
}

/// `"name":"value"` and `then`.
fn string(out: &mut Vec<u8>, name: &str, value: &str, then: char) {
    key(out, name);
    quoted(out, value);
    out.push(then as u8);
}

/// `"name":"value",` if there is a value (serde's `skip_serializing_if`).
fn optional(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        string(out, name, v, ',');
    }
}

/// `"name":value,` with `value` already JSON.
fn raw(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    out.extend_from_slice(value.as_bytes());
    out.push(b',');
}

/// `"name":123,`.
fn number(out: &mut Vec<u8>, name: &str, value: i64) {
    key(out, name);
    write!(out, "{value},").expect("writing to a Vec cannot fail");
}

/// `"name":` (names are plain ASCII, nothing to escape).
fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string. Values with nothing to escape (all ingest writes) are
/// copied whole; the check has no early exit, so it runs on whole vectors.
fn quoted(out: &mut Vec<u8>, value: &str) {
    let plain = value
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9._-]{0,40}",
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}a\u{7f}é€😀]{0,12}",
        ]
    }

    prop_compose! {
        fn record()(
            s in prop::collection::vec(text(), 12),
            opt in prop::collection::vec(any::<bool>(), 4),
            n in prop::collection::vec(any::<i64>(), 4),
            proven in any::<bool>(),
        ) -> ComplaintRecord {
            let pick = |i: usize, j: usize| opt[j].then(|| s[i].clone());
            ComplaintRecord {
                jti: s[0].clone(),
                esp: s[1].clone(),
                sender: s[2].clone(),
                provider: s[3].clone(),
                code: s[4].clone(),
                nature: s[5].clone(),
                campaign: pick(6, 0),
                recipient_domain: s[7].clone(),
                from_domain: pick(8, 1),
                reporter: pick(9, 2),
                rcb: pick(10, 3),
                recipient_proven: proven,
                token_iat: n[0],
                token_exp: n[1],
                reported_at_ms: n[2],
                received_at_ms: n[3],
                token: s[11].clone(),
            }
        }
    }

    proptest! {
        #[test]
        fn the_bytes_are_serde_json_s(rec in record()) {
            let ours = rec.to_json();
            prop_assert_eq!(&ours, &serde_json::to_vec(&rec).unwrap());
            let back: ComplaintRecord = serde_json::from_slice(&ours).unwrap();
            prop_assert_eq!(back, rec);
        }
    }
}
