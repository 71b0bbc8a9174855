//! Check mode (the provider side): verify the incoming token, say so in
//! the message, enforce the recipient's policy, count the delivery.
//!
//! The verdict goes into `Complaint-Token-Result:` (any such header the
//! message arrived with is removed first, so a sender cannot forge one):
//! `valid; esp=…; sender=…; nature=…; jti=…`, `invalid; reason=…` or
//! `absent`.

use std::sync::Arc;

use miltr_common::actions::{Action, Replycode};
use miltr_common::modifications::headers::InsertHeader;
use miltr_common::modifications::quarantine::Quarantine;
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::Capability;
use ricochet_policy::{Action as PolicyAction, Decision, PolicyStore};
use ricochet_registry::{ParticipantKind, RegistryHandle};
use ricochet_token::binding::{bindings_match, recipient_binding};
use ricochet_token::verify::unix_now;
use ricochet_token::{verify, Claims, VerifyOptions, HEADER_NAME};

use crate::config::PolicyAction as DefaultAction;
use crate::deliveries::DeliveryCounts;
use crate::metrics::MilterMetrics;
use crate::session::{Mode, Session};
use crate::transaction::{domain_of, Transaction};

/// The header the verdict is written in.
pub const RESULT_HEADER: &str = "Complaint-Token-Result";
/// The header a refused-but-delivered message carries.
pub const POLICY_HEADER: &str = "Complaint-Token-Policy";

/// What a token check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token verified and is bound to `recipient` of this message.
    Valid {
        /// The verified claims.
        claims: Box<Claims>,
        /// The envelope recipient the token is bound to.
        recipient: String,
    },
    /// There is a token, and it is wrong.
    Invalid {
        /// Machine-readable reason (a token error's, or one of this module's).
        reason: &'static str,
    },
    /// No token.
    Absent,
}

impl Verdict {
    /// The `Complaint-Token-Result` value.
    pub fn header_value(&self) -> String {
        match self {
            Verdict::Valid { claims, .. } => format!(
                "valid; esp={}; sender={}; nature={}; jti={}",
                claims.iss, claims.sub, claims.nat, claims.jti
            ),
            Verdict::Invalid { reason } => format!("invalid; reason={reason}"),
            Verdict::Absent => "absent".into(),
        }
    }

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Valid { .. } => "valid",
            Verdict::Invalid { .. } => "invalid",
            Verdict::Absent => "absent",
        }
    }
}

/// What every check-mode connection shares.
pub struct Checker {
    /// The ESPs' keys.
    pub registry: RegistryHandle,
    /// Tolerated clock skew, seconds.
    pub clock_skew_secs: i64,
    /// Recipient policies of the provider's domains.
    pub policies: Option<PolicyStore>,
    /// The action when a policy names none.
    pub default_action: DefaultAction,
    /// Delivered counts, reported to ingest.
    pub counts: Arc<DeliveryCounts>,
    /// Counters.
    pub metrics: MilterMetrics,
}

impl Checker {
    /// Checks the message's token against the registry and the envelope.
    pub fn verdict(&self, tx: &Transaction) -> Verdict {
        let mut tokens = tx.header_values(HEADER_NAME);
        let Some(raw) = tokens.next() else {
            return Verdict::Absent;
        };
        if tokens.next().is_some() {
            return Verdict::Invalid {
                reason: "multiple-tokens",
            };
        }
        // A folded header arrives with its line breaks; a token has no spaces.
        let token: String = raw.split_whitespace().collect();
        let registry = self.registry.current();
        let options = VerifyOptions {
            now: unix_now(),
            clock_skew_secs: self.clock_skew_secs,
        };
        let claims = match verify(&token, &registry.keys_of(ParticipantKind::Esp), &options) {
            Ok(c) => c,
            Err(e) => return Verdict::Invalid { reason: e.reason() },
        };
        bound_recipient(&claims, tx)
    }

    /// The policy decision for the message, with the action to take.
    pub fn policy(&self, tx: &Transaction, verdict: &Verdict) -> Option<(String, PolicyAction)> {
        let store = self.policies.as_ref()?;
        let policies = store.current();
        let (recipients, nature): (Vec<&str>, _) = match verdict {
            Verdict::Valid { claims, recipient } => (vec![recipient.as_str()], Some(claims.nat)),
            _ => (tx.recipients.iter().map(String::as_str).collect(), None),
        };
        recipients.into_iter().find_map(|r| {
            let policy = policies.current(&domain_of(r)?)?;
            match policy.decide(r, nature) {
                Decision::Accepted => None,
                Decision::Refused { reason } => {
                    Some((reason, policy.action.unwrap_or(self.default_action.into())))
                }
            }
        })
    }
}

/// The token's `rcb` must be one of this message's recipients, `rdm` that
/// recipient's domain, and `dom`, when present, the From domain.
fn bound_recipient(claims: &Claims, tx: &Transaction) -> Verdict {
    let Some(recipient) = tx
        .recipients
        .iter()
        .find(|r| bindings_match(&claims.rcb, &recipient_binding(&claims.jti, r)))
    else {
        return Verdict::Invalid {
            reason: "recipient-mismatch",
        };
    };
    if domain_of(recipient).as_deref() != Some(claims.rdm.as_str()) {
        return Verdict::Invalid {
            reason: "recipient-domain-mismatch",
        };
    }
    if let Some(dom) = &claims.dom {
        if tx.from_domain().as_deref() != Some(dom.as_str()) {
            return Verdict::Invalid {
                reason: "from-domain-mismatch",
            };
        }
    }
    Verdict::Valid {
        claims: Box::new(claims.clone()),
        recipient: recipient.clone(),
    }
}

impl From<DefaultAction> for PolicyAction {
    fn from(a: DefaultAction) -> Self {
        match a {
            DefaultAction::Header => PolicyAction::Header,
            DefaultAction::Quarantine => PolicyAction::Quarantine,
            DefaultAction::Reject => PolicyAction::Reject,
        }
    }
}

/// One MTA connection in check mode.
pub type CheckMilter = Session<Checker>;

impl Mode for Checker {
    const CAPABILITIES: Capability = Capability::SMFIF_ADDHDRS
        .union(Capability::SMFIF_CHGHDRS)
        .union(Capability::SMFIF_QUARANTINE);

    fn refuse_recipient(&self, _taken: &Transaction) -> Option<Action> {
        None
    }

    fn finish(&self, tx: &Transaction) -> ModificationResponse {
        let verdict = self.verdict(tx);
        self.metrics.checked(verdict.label());
        let mut builder = ModificationResponse::builder();
        tx.delete_all(RESULT_HEADER, &mut builder);
        tx.delete_all(POLICY_HEADER, &mut builder);
        builder.push(InsertHeader::new(
            0,
            RESULT_HEADER.as_bytes(),
            verdict.header_value().as_bytes(),
        ));
        let mut delivered = true;
        if let Some((reason, action)) = self.policy(tx, &verdict) {
            self.metrics.policy_refused(action);
            delivered = action == PolicyAction::Header;
            match action {
                PolicyAction::Reject => {
                    let text = format!("recipient policy: {reason}");
                    return builder.build(Replycode::new([5, 5, 0], [5, 7, 1], &text));
                }
                PolicyAction::Quarantine => {
                    builder.push(Quarantine::new(
                        format!("recipient policy: {reason}").as_bytes(),
                    ));
                }
                PolicyAction::Header => {}
            }
            let value = format!("refused; reason={reason}");
            builder.push(InsertHeader::new(
                0,
                POLICY_HEADER.as_bytes(),
                value.as_bytes(),
            ));
        }
        if let (Verdict::Valid { claims, .. }, true) = (&verdict, delivered) {
            self.counts.record(claims, unix_now());
        }
        builder.contin()
    }
}
