//! Sign mode (the ESP side): one complaint token per message, for its one
//! recipient.
//!
//! The sender id comes from the [`crate::senders`] map (what the MTA
//! authenticated), the declared nature and campaign from the headers the
//! sending application sets (`Message-Nature:`, `Message-Campaign:`),
//! which are removed before the message leaves. A token binds one
//! recipient, so a second `RCPT TO` in a transaction is answered
//! `452 4.5.3`: the client sends the rest in a new transaction (RFC 5321
//! §4.5.3.1.10), each message getting its own token.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use miltr_common::actions::{Action, Replycode};
use miltr_common::modifications::headers::InsertHeader;
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::Capability;
use ricochet_policy::{Decision, PolicyStore};
use ricochet_token::send_log::SendLog;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Nature, SigningKey, TokenRequest, HEADER_NAME};

use crate::config::UnsignedAction;
use crate::metrics::{MilterMetrics, SignOutcome};
use crate::senders::SenderMapFile;
use crate::session::{Mode, Session};
use crate::transaction::{domain_of, Transaction};

/// Header the sending application declares the nature in (removed).
pub const NATURE_HEADER: &str = "Message-Nature";
/// Header the sending application names the campaign in (removed).
pub const CAMPAIGN_HEADER: &str = "Message-Campaign";
/// Header naming the sender id, trusted only when configured (removed).
pub const SENDER_HEADER: &str = "Ricochet-Sender";

/// What every sign-mode connection shares.
pub struct Signer {
    /// The ESP id.
    pub esp: String,
    /// The ESP's signing key.
    pub key: Arc<SigningKey>,
    /// Where `jti,recipient` lines go.
    pub send_log: Mutex<SendLog>,
    /// The send log's path, for messages.
    pub send_log_path: PathBuf,
    /// Sender ids by SASL login and envelope sender.
    pub senders: Option<SenderMapFile>,
    /// Whether `Ricochet-Sender:` is believed when the map has no entry.
    pub trust_sender_header: bool,
    /// What happens to mail that cannot be signed.
    pub unsigned: UnsignedAction,
    /// Recipient policies, to refuse signing mail the recipient refuses.
    pub policies: Option<PolicyStore>,
    /// Token lifetime, seconds.
    pub lifetime_secs: i64,
    /// Counters.
    pub metrics: MilterMetrics,
}

/// Why a message was not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSigned {
    /// Metric label and header word.
    pub outcome: SignOutcome,
    /// The reason given to the client.
    pub reason: String,
}

impl Signer {
    /// The token request for a message, or why there is none.
    pub fn request(&self, tx: &Transaction) -> Result<TokenRequest, NotSigned> {
        let nature = declared_nature(tx)?;
        let sender = self.sender_of(tx).ok_or_else(|| NotSigned {
            outcome: SignOutcome::NoSender,
            reason: "no sender id for this SASL login or envelope sender".into(),
        })?;
        let recipient = tx.recipients.first().ok_or_else(|| NotSigned {
            outcome: SignOutcome::Failed,
            reason: "no recipient".into(),
        })?;
        self.check_policy(recipient, nature)?;
        let mut request = TokenRequest::new(&self.esp, &sender, nature, recipient, unix_now());
        request.cmp = tx.header(CAMPAIGN_HEADER).map(str::to_string);
        request.dom = tx.from_domain();
        request.lifetime_secs = self.lifetime_secs;
        Ok(request)
    }

    fn sender_of(&self, tx: &Transaction) -> Option<String> {
        let mapped = self.senders.as_ref().and_then(|s| {
            s.current()
                .resolve(tx.sasl_login.as_deref(), tx.mail_from.as_deref())
                .map(str::to_string)
        });
        mapped.or_else(|| {
            self.trust_sender_header
                .then(|| tx.header(SENDER_HEADER).map(str::to_string))
                .flatten()
        })
    }

    fn check_policy(&self, recipient: &str, nature: Nature) -> Result<(), NotSigned> {
        let Some(store) = &self.policies else {
            return Ok(());
        };
        let Some(policy) = domain_of(recipient).and_then(|d| store.current().current(&d)) else {
            return Ok(());
        };
        match policy.decide(recipient, Some(nature)) {
            Decision::Accepted => Ok(()),
            Decision::Refused { reason } => Err(NotSigned {
                outcome: SignOutcome::PolicyRefused,
                reason: format!("the recipient's policy refuses this mail ({reason})"),
            }),
        }
    }

    /// Mints the token and logs `jti,recipient`; the header value on success.
    pub fn sign(&self, request: &TokenRequest) -> Result<String, NotSigned> {
        let (token, claims) = mint(&self.key, request).map_err(|e| NotSigned {
            outcome: SignOutcome::Failed,
            reason: format!("cannot mint: {e}"),
        })?;
        let logged = self
            .send_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&claims.jti, &request.recipient);
        if let Err(e) = logged {
            // Mail is not held back for the log: the token still works,
            // only this recipient cannot be suppressed from the feed.
            tracing::error!(error = %e, log = %self.send_log_path.display(), "send log write failed");
            self.metrics.send_log_failures.inc();
        }
        Ok(token)
    }
}

fn declared_nature(tx: &Transaction) -> Result<Nature, NotSigned> {
    let value = tx.header(NATURE_HEADER).ok_or_else(|| NotSigned {
        outcome: SignOutcome::NoNature,
        reason: format!("no {NATURE_HEADER} header"),
    })?;
    value.to_ascii_lowercase().parse().map_err(|_| NotSigned {
        outcome: SignOutcome::NoNature,
        reason: format!("{NATURE_HEADER}: {value:?} is not a nature"),
    })
}

/// One MTA connection in sign mode.
pub type SignMilter = Session<Signer>;

impl Mode for Signer {
    const CAPABILITIES: Capability = Capability::SMFIF_ADDHDRS.union(Capability::SMFIF_CHGHDRS);

    fn refuse_recipient(&self, taken: &Transaction) -> Option<Action> {
        if taken.recipients.is_empty() {
            return None;
        }
        self.metrics.extra_recipients.inc();
        Some(
            Replycode::new(
                [4, 5, 2],
                [4, 5, 3],
                "one recipient per message: each gets its own complaint token; send the rest in a new transaction",
            )
            .into(),
        )
    }

    fn finish(&self, tx: &Transaction) -> ModificationResponse {
        let mut builder = ModificationResponse::builder();
        for name in [NATURE_HEADER, CAMPAIGN_HEADER, SENDER_HEADER, HEADER_NAME] {
            tx.delete_all(name, &mut builder);
        }
        match self.request(tx).and_then(|r| self.sign(&r)) {
            Ok(token) => {
                self.metrics.signed(SignOutcome::Signed);
                builder.push(InsertHeader::new(
                    0,
                    HEADER_NAME.as_bytes(),
                    token.as_bytes(),
                ));
                builder.contin()
            }
            Err(not) => {
                self.metrics.signed(not.outcome);
                tracing::info!(outcome = not.outcome.as_str(), reason = %not.reason, "not signed");
                match self.unsigned {
                    UnsignedAction::Pass => builder.contin(),
                    UnsignedAction::Reject => {
                        builder.build(Replycode::new([5, 5, 0], [5, 7, 1], &not.reason))
                    }
                    UnsignedAction::Tempfail => {
                        builder.build(Replycode::new([4, 5, 1], [4, 7, 1], &not.reason))
                    }
                }
            }
        }
    }
}
