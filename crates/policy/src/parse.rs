//! Reading a policy document: every error names its line and column, the
//! field it is about, and what is wrong.

use std::fmt;

use ricochet_token::claims::normalize_domain;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::RecipientPolicy;

/// Largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most address rules in one policy.
pub const MAX_ADDRESSES: usize = 10_000;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// 1-based line of the error (0 when it is about the whole document).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, as a path (`addresses.ceo@example.org.natures`), or `.`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

impl PolicyError {
    fn about(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError {
            line: 0,
            column: 0,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl RecipientPolicy {
    /// Parses and validates a policy document.
    pub fn parse(text: &str) -> Result<RecipientPolicy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::about(
                ".",
                format!(
                    "{} bytes, more than the {MAX_POLICY_BYTES} allowed",
                    text.len()
                ),
            ));
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let policy: RecipientPolicy = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            PolicyError {
                line: inner.line(),
                column: inner.column(),
                field,
                message: inner.to_string(),
            }
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// When this version takes effect, in seconds since the epoch.
    pub fn effective_from_secs(&self) -> Result<i64, PolicyError> {
        OffsetDateTime::parse(&self.effective_from, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| PolicyError::about("effective_from", format!("not RFC 3339: {e}")))
    }

    /// The rules serde cannot check.
    fn validate(&self) -> Result<(), PolicyError> {
        if self.version != 1 {
            return Err(PolicyError::about(
                "version",
                format!("version {} is not supported (1 is)", self.version),
            ));
        }
        let domain = normalize_domain(&self.domain)
            .map_err(|e| PolicyError::about("domain", e.to_string()))?;
        if domain != self.domain {
            return Err(PolicyError::about(
                "domain",
                format!("write the domain as its lower-case A-label: {domain}"),
            ));
        }
        self.effective_from_secs()?;
        if self.addresses.len() > MAX_ADDRESSES {
            return Err(PolicyError::about(
                "addresses",
                format!("more than {MAX_ADDRESSES} address rules"),
            ));
        }
        for address in self.addresses.keys() {
            let field = format!("addresses.{address}");
            let (local, at) = address
                .rsplit_once('@')
                .ok_or_else(|| PolicyError::about(&field, "not an address"))?;
            if local.is_empty() || at != self.domain || address.to_ascii_lowercase() != *address {
                return Err(PolicyError::about(
                    field,
                    format!("must be a lower-case address in {}", self.domain),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NatureRule, Unsigned};
    use ricochet_token::Nature;

    const GOOD: &str = r#"{
  "version": 1,
  "domain": "example.org",
  "effective_from": "2026-12-01T00:00:00Z",
  "natures": {"refuse": ["marketing"]},
  "unsigned": "accept",
  "action": "reject",
  "addresses": {"ceo@example.org": {"natures": {"accept": ["personal"]}}}
}"#;

    #[test]
    fn a_good_policy_parses() {
        let p = RecipientPolicy::parse(GOOD).unwrap();
        assert_eq!(p.natures, NatureRule::Refuse(vec![Nature::Marketing]));
        assert_eq!(p.unsigned, Unsigned::Accept);
        assert_eq!(p.effective_from_secs().unwrap(), 1_796_083_200);
    }

    fn error_of(text: &str) -> PolicyError {
        RecipientPolicy::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = error_of(&GOOD.replace("\"marketing\"]", "\"spam\"]"));
        assert_eq!((e.line, e.field.as_str()), (5, "natures.refuse[0]"), "{e}");
        let e = error_of(&GOOD.replace("\"accept\",", "\"maybe\","));
        assert_eq!((e.line, e.field.as_str()), (6, "unsigned"), "{e}");
        let e = error_of(&GOOD.replace("\"action\"", "\"actions\""));
        assert_eq!(e.line, 7, "{e}");
        let e = error_of(&GOOD.replace("{\"refuse\": [\"marketing\"]}", "{}"));
        assert_eq!(e.field, "natures", "{e}");
    }

    #[test]
    fn rules_beyond_the_syntax_are_checked() {
        assert_eq!(
            error_of(&GOOD.replace("\"version\": 1", "\"version\": 2")).field,
            "version"
        );
        assert_eq!(
            error_of(&GOOD.replace("\"example.org\"", "\"Example.org\"")).field,
            "domain"
        );
        assert_eq!(
            error_of(&GOOD.replace("2026-12-01T00:00:00Z", "yesterday")).field,
            "effective_from"
        );
        let e = error_of(&GOOD.replace("ceo@example.org", "ceo@example.com"));
        assert_eq!(e.field, "addresses.ceo@example.com");
    }
}
