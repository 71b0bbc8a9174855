//! What the benches, the simulation, the fault suite and the `ricochet`
//! command's submit commands share, written once:
//!
//! - [`ingest`]: a client of ingest (`POST` as a provider, the verdicts back);
//! - [`participants`]: ESPs and providers with fresh keys in a registry file;
//! - [`process`]: a service binary run as a child process on a free
//!   loopback port (ready, stopped, killed, restarted);
//! - [`stats`]: percentiles of latencies;
//! - [`clock`]: times in RFC 3339.

pub mod clock;
pub mod ingest;
pub mod participants;
pub mod process;
pub mod stats;
