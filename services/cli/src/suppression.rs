//! From complaint feed to suppression list: each negative complaint whose
//! `jti` the ESP's send log knows, and whose recipient hashes to the
//! token's `rcb`, suppresses that recipient. A recipient that does not hash
//! to `rcb` is reported, not suppressed (the log or the feed is wrong, and
//! suppressing the wrong person would stop their mail).

use std::collections::HashMap;

use ricochet_token::binding::{bindings_match, recipient_binding};
use serde_json::Value;

/// One line of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// The address to stop mailing.
    pub recipient: String,
    /// Sender id.
    pub sender: String,
    /// Campaign id, or empty.
    pub campaign: String,
    /// Complaint code.
    pub code: String,
    /// When the user complained (ms).
    pub reported_at_ms: i64,
}

/// What the feed entries came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Recipients to suppress, in feed order.
    pub suppressed: Vec<Suppressed>,
    /// `not-spam` reports: the user wants the mail; nothing to suppress.
    pub positive: usize,
    /// Entries whose jti is not in the send log.
    pub unknown: usize,
    /// (jti, logged recipient) whose binding does not match `rcb`.
    pub mismatched: Vec<(String, String)>,
    /// Entries without `rcb` (loaded before it was kept): suppressed on
    /// the send log's word alone.
    pub unchecked: usize,
}

/// Sorts feed `items` into an [`Outcome`] with the send log `log` (jti →
/// recipient).
pub fn suppress(items: &[Value], log: &HashMap<String, String>) -> Outcome {
    let mut out = Outcome::default();
    for item in items {
        let s = |k: &str| item[k].as_str().unwrap_or_default().to_string();
        if item["signal"] == "positive" {
            out.positive += 1;
            continue;
        }
        let jti = s("jti");
        let Some(recipient) = log.get(&jti) else {
            out.unknown += 1;
            continue;
        };
        match item["rcb"].as_str() {
            Some(rcb) if !bindings_match(rcb, &recipient_binding(&jti, recipient)) => {
                out.mismatched.push((jti, recipient.clone()));
                continue;
            }
            Some(_) => {}
            None => out.unchecked += 1,
        }
        out.suppressed.push(Suppressed {
            recipient: recipient.clone(),
            sender: s("sender"),
            campaign: s("campaign"),
            code: s("code"),
            reported_at_ms: item["reported_at_ms"].as_i64().unwrap_or(0),
        });
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(jti: &str, code: &str, signal: &str, rcb: Option<String>) -> Value {
        json!({"jti": jti, "sender": "s1", "campaign": "spring", "code": code,
               "signal": signal, "rcb": rcb, "reported_at_ms": 5})
    }

    #[test]
    fn only_matching_negative_complaints_suppress() {
        let log = HashMap::from([
            ("j1".to_string(), "Alice@Example.com".to_string()),
            ("j2".to_string(), "bob@example.net".to_string()),
            ("j3".to_string(), "carol@example.org".to_string()),
            ("j5".to_string(), "dan@example.org".to_string()),
        ]);
        let items = [
            entry(
                "j1",
                "unwanted",
                "negative",
                Some(recipient_binding("j1", "alice@example.com")),
            ),
            // The log says bob, the token was bound to someone else.
            entry(
                "j2",
                "phishing",
                "negative",
                Some(recipient_binding("j2", "eve@example.net")),
            ),
            entry(
                "j3",
                "not-spam",
                "positive",
                Some(recipient_binding("j3", "carol@example.org")),
            ),
            entry(
                "j4",
                "unwanted",
                "negative",
                Some(recipient_binding("j4", "x@example.org")),
            ),
            entry("j5", "unwanted", "negative", None),
        ];
        let out = suppress(&items, &log);
        let who: Vec<&str> = out
            .suppressed
            .iter()
            .map(|s| s.recipient.as_str())
            .collect();
        assert_eq!(who, ["Alice@Example.com", "dan@example.org"]);
        assert_eq!(
            out.mismatched,
            [("j2".to_string(), "bob@example.net".to_string())]
        );
        assert_eq!((out.positive, out.unknown, out.unchecked), (1, 1, 1));
        assert_eq!(out.suppressed[0].campaign, "spring");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain@example.com"), "plain@example.com");
        assert_eq!(
            csv_field("\"a,b\"@example.com"),
            "\"\"\"a,b\"\"@example.com\""
        );
    }
}
