//! What Ricochet's HTTP APIs share: errors as RFC 9457 problem documents
//! ([`problem`]), authentication of a participant by the bearer JWT it
//! signs with its registered key ([`auth`]), and the server that holds
//! connections to limits ([`server`]).

pub mod auth;
pub mod problem;
pub mod server;

pub use auth::authenticate;
pub use problem::{JsonLocation, Problem};
pub use server::{serve, ServerArgs, ServerLimits};
