//! One MTA connection, whatever the mode: the envelope and headers are
//! collected into a [`Transaction`]; a [`Mode`] decides what a recipient
//! and the end of the message are answered.

use std::sync::Arc;

use async_trait::async_trait;
use miltr_common::actions::{Action, Continue};
use miltr_common::commands::{Header, Macro, Mail, Recipient};
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::{Capability, OptNeg};
use miltr_server::Milter;

use crate::transaction::{bare_address, negotiate, Transaction};

/// Most recipients kept for one message.
pub const MAX_RECIPIENTS: usize = 1_000;

/// What differs between the sign and check modes.
pub trait Mode: Send + Sync + 'static {
    /// The modifications the mode makes (option negotiation).
    const CAPABILITIES: Capability;
    /// The refusal of one more recipient given the ones taken, or `None`.
    fn refuse_recipient(&self, taken: &Transaction) -> Option<Action>;
    /// The answer at the end of the message.
    fn finish(&self, tx: &Transaction) -> ModificationResponse;
}

/// One connection's milter in mode `M`.
pub struct Session<M: Mode> {
    mode: Arc<M>,
    tx: Transaction,
}

impl<M: Mode> Session<M> {
    /// A connection's milter sharing `mode`.
    pub fn new(mode: Arc<M>) -> Self {
        Session {
            mode,
            tx: Transaction::default(),
        }
    }
}

#[async_trait]
impl<M: Mode> Milter for Session<M> {
    type Error = std::convert::Infallible;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        negotiate(theirs, M::CAPABILITIES)
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
        // The login's macro arrives just before MAIL: keep it.
        let login = self.tx.sasl_login.take();
        self.tx.reset();
        self.tx.sasl_login = login;
        self.tx.mail_from = Some(bare_address(&mail.sender()));
        Ok(Continue.into())
    }

    async fn rcpt(&mut self, rcpt: Recipient) -> Result<Action, Self::Error> {
        if let Some(refusal) = self.mode.refuse_recipient(&self.tx) {
            return Ok(refusal);
        }
        if self.tx.recipients.len() < MAX_RECIPIENTS {
            self.tx.recipients.push(bare_address(&rcpt.recipient()));
        }
        Ok(Continue.into())
    }

    async fn header(&mut self, header: Header) -> Result<Action, Self::Error> {
        self.tx.push_header(&header.name(), &header.value());
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        Ok(self.mode.finish(&self.tx))
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        self.tx.reset();
        Ok(())
    }
}
