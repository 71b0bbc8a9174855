//! What Ricochet's HTTP APIs share: errors as RFC 9457 problem documents
//! ([`problem`]), authentication of a participant by the bearer JWT it
//! signs with its registered key ([`auth`]), the server that holds
//! connections to limits ([`server`]), and the health, readiness and
//! metrics endpoints every service serves alike ([`ops`]).

pub mod auth;
pub mod bearer_cache;
pub mod ops;
pub mod problem;
pub mod server;

pub use auth::{authenticate, authenticate_cached};
pub use bearer_cache::VerifiedBearers;
pub use problem::{JsonLocation, Problem};
pub use server::{serve, ServerArgs, ServerLimits};
