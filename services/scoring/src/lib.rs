//! Ricochet scoring: from counts to reputation and penalties.
//!
//! The pure core lives here, so every rule is unit-tested without a database:
//! [`wilson`] (score bounds instead of bare rates), [`policy`] (weights,
//! anti-abuse caps, thresholds, the tier a window deserves), [`hysteresis`]
//! (tiers rise at once and fall only after a week below), and [`chain`] (the
//! per-ESP hash chain that makes the penalty history tamper-evident).
//! [`counts`] and [`books`] hold a sender's counts and the sums of the
//! levels above it. Every table scoring reads or writes, with its rows and
//! SQL, is in [`store`]; [`engine`] runs the scoring passes over it, [`feed`]
//! the complaint feed, [`dispatch`] the deliveries to ESPs, [`api`] and
//! [`provider_api`] the HTTP APIs. [`service`] wires them into the running
//! service (`ricochet-scoring`), its settings in [`config`], its errors in
//! [`error`].

pub mod api;
pub mod books;
pub mod chain;
pub mod config;
pub mod counts;
pub mod dispatch;
pub mod domains;
pub mod engine;
pub mod error;
pub mod feed;
pub mod groups;
pub mod hysteresis;
pub mod listed;
pub mod metrics;
pub mod partition;
pub mod policy;
pub mod policy_file;
pub mod provider_api;
pub mod service;
pub mod standing_report;
pub mod store;
pub mod streak;
pub mod verdict;
pub mod wilson;
pub mod windows;

pub use error::ScoringError;
pub use policy::{Assessment, Policy, Tier, WindowCounts};
pub use ricochet_kafka::Level;
pub use service::run;
