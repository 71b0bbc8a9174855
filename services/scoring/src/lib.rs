//! Ricochet scoring: from counts to reputation and penalties.
//!
//! The pure core lives here, so every rule is unit-tested without a database:
//! [`wilson`] (score bounds instead of bare rates), [`policy`] (weights,
//! anti-abuse caps, thresholds, the tier a window deserves), [`hysteresis`]
//! (tiers rise at once and fall only after a week below), and [`chain`] (the
//! per-ESP hash chain that makes the penalty history tamper-evident).

pub mod api;
pub mod chain;
pub mod counts;
pub mod dispatch;
pub mod engine;
pub mod hysteresis;
pub mod metrics;
pub mod policy;
pub mod snapshots;
pub mod wilson;

pub use policy::{Assessment, Policy, Tier, WindowCounts};
