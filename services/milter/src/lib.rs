//! Ricochet's milter: complaint tokens where mail flows.
//!
//! Layout, by responsibility:
//! - [`config`]: the command line (`sign` and `check` modes);
//! - [`server`]: the listener, one task and one milter state per MTA connection;
//! - [`transaction`]: what the MTA tells a milter about a message, and
//!   [`session`]: one connection's protocol handling, shared by the modes;
//! - [`sign`] (ESP side) with [`senders`], the sender map;
//! - [`check`] (provider side) with [`deliveries`], the delivered counts it reports;
//! - [`metrics`]: the Prometheus metrics;
//! - [`setup`]: building either mode from its settings.
//!
//! Library: `miltr-server` (MIT, pure Rust, milter protocol 6), which
//! covers what both modes use: macros (`{auth_authen}`), per-recipient
//! replies, header insert and delete, quarantine and reply codes at the
//! end of the message.

pub mod check;
pub mod config;
pub mod deliveries;
pub mod metrics;
pub mod senders;
pub mod server;
pub mod session;
pub mod setup;
pub mod sign;
pub mod transaction;
