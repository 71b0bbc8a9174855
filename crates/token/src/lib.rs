//! Ricochet complaint tokens.
//!
//! An ESP mints one token per message (a JWS compact serialization signed with
//! `EdDSA` or `ES256`); a mailbox provider submits it when its user complains;
//! ingest verifies it. This crate holds every step of that life cycle: key
//! generation and JWK/JWKS encoding ([`keys`]), the claims and their rules
//! ([`claims`]), minting ([`mint`]), verification with one precise error per
//! failure ([`verify`], [`TokenError`]), the recipient binding
//! ([`binding`]) and the ESP's log of which recipient each token was for
//! ([`send_log`]). The format is specified in `schemas/complaint-token.md`.
//! Tokens are signed, and API bearer tokens verified, with the
//! `jsonwebtoken` crate behind Ricochet's own checks (`jwt`, and the
//! specification's "How the reference implementation is built").

pub mod bearer;
pub mod binding;
pub mod claims;
pub mod detached;
mod ed25519;
mod error;
mod jws;
mod jwt;
pub mod key_file;
pub mod keys;
mod members;
pub mod mint;
pub mod send_log;
pub mod verify;

pub use claims::{Claims, Nature};
pub use error::TokenError;
pub use key_file::KeyFileError;
pub use keys::{Algorithm, Jwk, JwkSet, SigningKey, VerifyingKey};
pub use mint::{mint, TokenRequest};
pub use verify::{verify, verify_many, IssuerKeys, KeyLookup, VerifyOptions};

/// The `typ` header value every complaint token carries (RFC 8725 explicit typing),
/// so an API bearer JWT can never be replayed as a complaint token or vice versa.
pub const TOKEN_TYPE: &str = "rct+jwt";

/// Longest accepted token: one RFC 5322 header line is at most 998 characters,
/// and `Complaint-Token: ` takes 17 of them.
pub const MAX_TOKEN_LEN: usize = 998 - "Complaint-Token: ".len();

/// Name of the message header that carries the token.
pub const HEADER_NAME: &str = "Complaint-Token";
