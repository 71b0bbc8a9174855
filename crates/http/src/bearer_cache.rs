//! Bearer tokens already verified, remembered until they expire or the
//! registry changes.
//!
//! A caller signs one bearer token and sends it with every request for up
//! to five minutes; checking its signature again on each request cost
//! ingest about as much as 5 of a request's 200 complaint tokens. Only
//! tokens that verified are remembered (a bad one costs a full check every
//! time, as before), keyed by a SHA-256 digest of the token, so a lookup
//! compares digests and never the token's own bytes. An entry holds for the
//! registry it was verified with: any reload (a key revoked, a participant
//! removed) forgets every entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ricochet_registry::{ParticipantKind, Registry};
use ricochet_token::VerifyOptions;

/// Most tokens remembered; when full, expired ones go, then all of them.
pub const DEFAULT_CAPACITY: usize = 4096;

/// A token's digest: what [`VerifiedBearers`] is keyed by.
pub type Digest = [u8; 32];

/// The bearer tokens verified against the registry in force.
pub struct VerifiedBearers {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The registry the entries were verified with.
    registry: Option<Arc<Registry>>,
    entries: HashMap<Digest, Verified>,
}

impl State {
    /// Whether the entries were verified against this very `registry`.
    fn verified_with(&self, registry: &Arc<Registry>) -> bool {
        self.registry
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, registry))
    }
}

struct Verified {
    participant: String,
    exp: i64,
}

impl Default for VerifiedBearers {
    fn default() -> Self {
        VerifiedBearers::with_capacity(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for VerifiedBearers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedBearers")
            .field("capacity", &self.capacity)
            .field("entries", &self.len())
            .finish()
    }
}

impl VerifiedBearers {
    /// An empty cache holding at most `capacity` tokens (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        VerifiedBearers {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The digest of `token` as presented by a `kind` for `audience`.
    pub fn digest(kind: ParticipantKind, audience: &str, token: &str) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [kind.table(), audience, token] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        digest
    }

    /// The participant a token with this digest was verified as, if it was
    /// verified against `registry` and is still unexpired at `opts.now`.
    pub fn get(
        &self,
        digest: &Digest,
        registry: &Arc<Registry>,
        opts: &VerifyOptions,
    ) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.verified_with(registry) {
            return None;
        }
        let hit = state.entries.get(digest)?;
        // The same expiry rule as the full check (`verify_bearer`).
        (!opts.expired(hit.exp)).then(|| hit.participant.clone())
    }

    /// Remembers a token that just verified against `registry`.
    pub fn insert(
        &self,
        digest: Digest,
        registry: &Arc<Registry>,
        participant: &str,
        exp: i64,
        opts: &VerifyOptions,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.verified_with(registry) {
            state.entries.clear();
            state.registry = Some(registry.clone());
        }
        if state.entries.len() >= self.capacity {
            state.entries.retain(|_, v| !opts.expired(v.exp));
            if state.entries.len() >= self.capacity {
                state.entries.clear();
            }
        }
        let participant = participant.to_string();
        state.entries.insert(digest, Verified { participant, exp });
    }

    /// Tokens remembered now.
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_registry::{add_participant, NewParticipant};
    use ricochet_token::{Algorithm, SigningKey};

    const NOW: i64 = 1_790_000_000;
    const OPTS: VerifyOptions = VerifyOptions {
        now: NOW,
        clock_skew_secs: 30,
    };

    fn registry() -> Arc<Registry> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.toml");
        let key = SigningKey::generate(Algorithm::EdDSA, "p-1").unwrap();
        let provider = NewParticipant {
            kind: ParticipantKind::Provider,
            id: "mail.example".into(),
            name: "mail.example".into(),
            keys: vec![key.public_jwk()],
            domains: vec!["mail.example".into()],
            webhook_url: None,
        };
        add_participant(&path, &provider).unwrap();
        Arc::new(Registry::load(&path).unwrap())
    }

    fn digest(token: &str) -> Digest {
        VerifiedBearers::digest(ParticipantKind::Provider, "ricochet-ingest", token)
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires() {
        let (cache, reg) = (VerifiedBearers::default(), registry());
        assert_eq!(cache.get(&digest("t1"), &reg, &OPTS), None);
        cache.insert(digest("t1"), &reg, "mail.example", NOW + 60, &OPTS);
        assert_eq!(
            cache.get(&digest("t1"), &reg, &OPTS).as_deref(),
            Some("mail.example")
        );
        assert_eq!(cache.get(&digest("t2"), &reg, &OPTS), None);
        // Expiry follows verify_bearer's rule: refused once exp + skew <= now.
        let at = |now| VerifyOptions { now, ..OPTS };
        let last = NOW + 60 + 29;
        assert!(cache.get(&digest("t1"), &reg, &at(last)).is_some());
        assert_eq!(cache.get(&digest("t1"), &reg, &at(last + 1)), None);
    }

    #[test]
    fn another_registry_forgets_every_entry() {
        let (cache, old, new) = (VerifiedBearers::default(), registry(), registry());
        cache.insert(digest("t1"), &old, "mail.example", NOW + 60, &OPTS);
        assert_eq!(cache.get(&digest("t1"), &new, &OPTS), None);
        cache.insert(digest("t2"), &new, "mail.example", NOW + 60, &OPTS);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&digest("t1"), &old, &OPTS), None);
    }

    #[test]
    fn the_digest_binds_kind_audience_and_token() {
        let esp = VerifiedBearers::digest(ParticipantKind::Esp, "ricochet-ingest", "t1");
        let other_aud = VerifiedBearers::digest(ParticipantKind::Provider, "ricochet-esp", "t1");
        assert_ne!(digest("t1"), esp);
        assert_ne!(digest("t1"), other_aud);
        // Length-prefixed parts: moving a boundary changes the digest.
        let a = VerifiedBearers::digest(ParticipantKind::Provider, "ab", "c");
        let b = VerifiedBearers::digest(ParticipantKind::Provider, "a", "bc");
        assert_ne!(a, b);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_everything() {
        let (cache, reg) = (VerifiedBearers::with_capacity(2), registry());
        cache.insert(digest("old"), &reg, "p", NOW - 100, &OPTS);
        cache.insert(digest("live"), &reg, "p", NOW + 60, &OPTS);
        cache.insert(digest("new"), &reg, "p", NOW + 60, &OPTS);
        assert!(cache.get(&digest("live"), &reg, &OPTS).is_some());
        assert!(cache.get(&digest("new"), &reg, &OPTS).is_some());
        cache.insert(digest("third"), &reg, "p", NOW + 60, &OPTS);
        assert_eq!(cache.len(), 1, "full of live entries: cleared");
        assert!(cache.get(&digest("third"), &reg, &OPTS).is_some());
    }
}
