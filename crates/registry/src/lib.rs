//! The participants registry: which mailbox providers and ESPs take part,
//! their public keys, the recipient domains each provider hosts, and each
//! ESP's webhook. The operator keeps it in a TOML file (format in
//! `schemas/registry.md`); services only read it and pick up changes without
//! a restart ([`RegistryHandle`]).

mod edit;
mod error;
mod handle;
mod model;

pub use edit::{add_participant, NewParticipant};
pub use error::RegistryError;
pub use handle::RegistryHandle;
pub use model::{Esp, Participant, ParticipantKind, Provider, Registry, RoleKeys};
