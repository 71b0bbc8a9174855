//! What Ricochet's HTTP APIs share: errors as RFC 9457 problem documents
//! ([`problem`]) and authentication of a participant by the bearer JWT it
//! signs with its registered key ([`auth`]).

pub mod auth;
pub mod problem;

pub use auth::authenticate;
pub use problem::{JsonLocation, Problem};
