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

use async_trait::async_trait;
use miltr_common::actions::{Action, Continue, Replycode};
use miltr_common::commands::{Header, Macro, Mail, Recipient};
use miltr_common::modifications::headers::InsertHeader;
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::{Capability, OptNeg};
use miltr_server::Milter;
use ricochet_policy::{Decision, PolicyStore};
use ricochet_token::send_log::SendLog;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Nature, SigningKey, TokenRequest, HEADER_NAME};

use crate::config::UnsignedAction;
use crate::metrics::{MilterMetrics, SignOutcome};
use crate::senders::SenderMapFile;
use crate::transaction::{bare_address, domain_of, negotiate, Transaction};

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
pub struct SignMilter {
    signer: Arc<Signer>,
    tx: Transaction,
}

impl SignMilter {
    /// A connection's milter.
    pub fn new(signer: Arc<Signer>) -> Self {
        SignMilter {
            signer,
            tx: Transaction::default(),
        }
    }

    fn finish(&mut self) -> ModificationResponse {
        let mut builder = ModificationResponse::builder();
        for name in [NATURE_HEADER, CAMPAIGN_HEADER, SENDER_HEADER, HEADER_NAME] {
            self.tx.delete_all(name, &mut builder);
        }
        let signed = self
            .signer
            .request(&self.tx)
            .and_then(|r| self.signer.sign(&r));
        match signed {
            Ok(token) => {
                self.signer.metrics.signed(SignOutcome::Signed);
                builder.push(InsertHeader::new(
                    0,
                    HEADER_NAME.as_bytes(),
                    token.as_bytes(),
                ));
                builder.contin()
            }
            Err(not) => {
                self.signer.metrics.signed(not.outcome);
                tracing::info!(outcome = not.outcome.as_str(), reason = %not.reason, "not signed");
                match self.signer.unsigned {
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

#[async_trait]
impl Milter for SignMilter {
    type Error = std::convert::Infallible;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        negotiate(
            theirs,
            Capability::SMFIF_ADDHDRS | Capability::SMFIF_CHGHDRS,
        )
    }

    async fn macro_(&mut self, macro_: Macro) -> Result<(), Self::Error> {
        for (name, value) in macro_.macros() {
            if name == b"{auth_authen}" && !value.is_empty() {
                self.tx.sasl_login = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        Ok(())
    }

    async fn mail(&mut self, mail: Mail) -> Result<Action, Self::Error> {
        let login = self.tx.sasl_login.take();
        self.tx.reset();
        self.tx.sasl_login = login;
        self.tx.mail_from = Some(bare_address(&mail.sender()));
        Ok(Continue.into())
    }

    async fn rcpt(&mut self, rcpt: Recipient) -> Result<Action, Self::Error> {
        if !self.tx.recipients.is_empty() {
            self.signer.metrics.extra_recipients.inc();
            return Ok(Replycode::new(
                [4, 5, 2],
                [4, 5, 3],
                "one recipient per message: each gets its own complaint token; send the rest in a new transaction",
            )
            .into());
        }
        self.tx.recipients.push(bare_address(&rcpt.recipient()));
        Ok(Continue.into())
    }

    async fn header(&mut self, header: Header) -> Result<Action, Self::Error> {
        self.tx.push_header(&header.name(), &header.value());
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        Ok(self.finish())
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        self.tx.reset();
        Ok(())
    }
}
