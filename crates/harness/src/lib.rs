//! What the benches, the simulation, the fault suite and the `ricochet`
//! command's submit commands share, written once:
//!
//! - [`ingest`]: a client of ingest (`POST` as a provider, the verdicts back);
//! - [`api`]: a client of the ESP and provider APIs (signatures verified);
//! - [`participants`]: ESPs and providers with fresh keys in a registry file;
//! - [`process`]: a service binary run as a child process on a free
//!   loopback port (ready, stopped, killed, restarted);
//! - [`stats`]: percentiles of latencies;
//! - [`clock`]: times in RFC 3339;
//! - [`rows`]: synthetic ClickHouse rows;
//! - [`smtp`]: an SMTP client, and [`postfix`]: Postfix instances of
//!   their own on loopback, for the mail-flow tests and benchmarks;
//! - [`bench`]: the benchmarks (`ricochet bench ...`) and [`simulate`]: the
//!   simulated world (`ricochet simulate`), which the `ricochet` command
//!   runs as front-ends.

pub mod api;
pub mod bench;
pub mod clock;
pub mod ingest;
pub mod participants;
pub mod postfix;
pub mod process;
pub mod rows;
pub mod simulate;
pub mod smtp;
pub mod stats;
