//! The recipient policy document and the decisions taken on it.

use std::collections::BTreeMap;

use ricochet_token::Nature;
use serde::{Deserialize, Serialize};

/// Which natures a domain or an address accepts: exactly one of the two
/// lists (an inclusive or an exclusive rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum NatureRule {
    /// Only these natures are accepted.
    Accept(Vec<Nature>),
    /// Every nature but these is accepted.
    Refuse(Vec<Nature>),
}

impl NatureRule {
    /// Whether mail declaring `nature` is accepted.
    pub fn accepts(&self, nature: Nature) -> bool {
        match self {
            NatureRule::Accept(list) => list.contains(&nature),
            NatureRule::Refuse(list) => !list.contains(&nature),
        }
    }
}

/// Whether mail without a complaint token is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unsigned {
    /// Accepted (the default: most mail is still unsigned).
    #[default]
    Accept,
    /// Refused.
    Refuse,
}

/// What the recipient's mail server does with mail the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deliver it, marked with a header.
    Header,
    /// Hold it for review.
    Quarantine,
    /// Refuse it at SMTP time (`550 5.7.1`).
    Reject,
}

/// The rule of one address, overriding the domain's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRule {
    /// The natures this address accepts (default: the domain's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub natures: Option<NatureRule>,
    /// Whether this address accepts unsigned mail (default: the domain's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsigned: Option<Unsigned>,
}

/// One domain's published policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientPolicy {
    /// Format version: 1.
    pub version: u32,
    /// The recipient domain (lower-case A-label).
    pub domain: String,
    /// When this version takes effect (RFC 3339): tokens issued from then on
    /// are judged by it.
    pub effective_from: String,
    /// The natures the domain accepts.
    pub natures: NatureRule,
    /// Whether the domain accepts unsigned mail.
    #[serde(default)]
    pub unsigned: Unsigned,
    /// What the domain's servers do with refused mail (default: the
    /// server's own setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Rules of single addresses (lower case), overriding the domain's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, AddressRule>,
}

/// The outcome of a policy for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The policy accepts it.
    Accepted,
    /// The policy refuses it; `reason` says why, for a reply or a header.
    Refused {
        /// `nature-refused: marketing` or `unsigned-refused`.
        reason: String,
    },
}

impl RecipientPolicy {
    /// The decision for mail to `recipient` declaring `nature` (`None`:
    /// unsigned, or a token that did not verify).
    pub fn decide(&self, recipient: &str, nature: Option<Nature>) -> Decision {
        let rule = self.addresses.get(&recipient.trim().to_ascii_lowercase());
        match nature {
            None => {
                let unsigned = rule.and_then(|r| r.unsigned).unwrap_or(self.unsigned);
                match unsigned {
                    Unsigned::Accept => Decision::Accepted,
                    Unsigned::Refuse => Decision::Refused {
                        reason: "unsigned-refused".into(),
                    },
                }
            }
            Some(n) => {
                let natures = rule
                    .and_then(|r| r.natures.as_ref())
                    .unwrap_or(&self.natures);
                if natures.accepts(n) {
                    Decision::Accepted
                } else {
                    Decision::Refused {
                        reason: format!("nature-refused: {n}"),
                    }
                }
            }
        }
    }

    /// Whether every recipient of the domain, whatever its own rule,
    /// accepts `nature`: what ingest can tell without knowing the address.
    pub fn accepted_everywhere(&self, nature: Nature) -> bool {
        self.natures.accepts(nature)
            && self
                .addresses
                .values()
                .filter_map(|r| r.natures.as_ref())
                .all(|r| r.accepts(nature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RecipientPolicy {
        RecipientPolicy {
            version: 1,
            domain: "example.org".into(),
            effective_from: "2026-12-01T00:00:00Z".into(),
            natures: NatureRule::Refuse(vec![Nature::Marketing]),
            unsigned: Unsigned::Accept,
            action: None,
            addresses: BTreeMap::from([(
                "ceo@example.org".to_string(),
                AddressRule {
                    natures: Some(NatureRule::Accept(vec![Nature::Personal])),
                    unsigned: Some(Unsigned::Refuse),
                },
            )]),
        }
    }

    #[test]
    fn the_address_rule_overrides_the_domain_rule() {
        let p = policy();
        assert_eq!(
            p.decide("bob@example.org", Some(Nature::Newsletter)),
            Decision::Accepted
        );
        assert!(matches!(
            p.decide("bob@example.org", Some(Nature::Marketing)),
            Decision::Refused { reason } if reason == "nature-refused: marketing"
        ));
        assert!(matches!(
            p.decide("CEO@example.org", Some(Nature::Newsletter)),
            Decision::Refused { .. }
        ));
        assert_eq!(
            p.decide("ceo@example.org", Some(Nature::Personal)),
            Decision::Accepted
        );
        assert_eq!(p.decide("bob@example.org", None), Decision::Accepted);
        assert!(matches!(
            p.decide("ceo@example.org", None),
            Decision::Refused { reason } if reason == "unsigned-refused"
        ));
    }

    #[test]
    fn accepted_everywhere_needs_every_address_to_agree() {
        let p = policy();
        assert!(p.accepted_everywhere(Nature::Personal));
        assert!(!p.accepted_everywhere(Nature::Newsletter));
        assert!(!p.accepted_everywhere(Nature::Marketing));
    }
}
