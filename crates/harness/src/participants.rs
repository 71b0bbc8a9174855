//! ESPs and providers with fresh keys, added to a registry file the way an
//! operator adds them (`ricochet registry add`).

use std::path::Path;

use anyhow::{Context, Result};
use ricochet_registry::{add_participant, NewParticipant, ParticipantKind};
use ricochet_token::key_file::write_private;
use ricochet_token::{Algorithm, SigningKey};

/// Generates a key (`alg`, `kid`) for participant `id` and adds the
/// participant with its public key to `registry`; returns the private key.
pub fn register(
    registry: &Path,
    kind: ParticipantKind,
    id: &str,
    (alg, kid): (Algorithm, &str),
    domains: &[&str],
) -> Result<SigningKey> {
    let key = SigningKey::generate(alg, kid)?;
    add(registry, kind, id, &key, domains)?;
    Ok(key)
}

/// Adds participant `id` with the public part of `key` to `registry`.
pub fn add(
    registry: &Path,
    kind: ParticipantKind,
    id: &str,
    key: &SigningKey,
    domains: &[&str],
) -> Result<()> {
    let domains = domains.iter().map(|d| d.to_string()).collect();
    add_participant(
        registry,
        &NewParticipant::with_key(kind, id, key.public_jwk(), domains),
    )
    .with_context(|| format!("adding {id} to {}", registry.display()))
}

/// Generates a key and writes its private JWK to `path` (Ricochet's own
/// signing key, for scoring's `--signing-key`).
pub fn own_key(path: &Path, kid: &str) -> Result<SigningKey> {
    let key = SigningKey::generate(Algorithm::EdDSA, kid)?;
    write_private(path, &key.private_jwk())
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(key)
}
