//! Recipient policies: a domain (and, optionally, single addresses in it)
//! publishes which declared natures of mail it accepts, whether it accepts
//! mail without a complaint token, and what its mail servers do with mail
//! that breaks the policy. Specified in `schemas/recipient-policy.md`.
//!
//! - [`model`]: the document and [`Decision`]s taken on it;
//! - [`parse`]: reading a document with the line, column and field of each error;
//! - [`store`]: a directory of published policies with their history,
//!   reread when it changes.

pub mod model;
pub mod parse;
pub mod store;

pub use model::{Action, Decision, NatureRule, RecipientPolicy, Unsigned};
pub use parse::PolicyError;
pub use store::PolicyStore;
