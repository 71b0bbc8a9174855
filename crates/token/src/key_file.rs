//! Private JWK files: read as every signing party does (the `ricochet`
//! command, the scoring service), written readable by their owner only.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::keys::{Jwk, KeyError, SigningKey};

/// Why a private key file could not be used.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a JWK.
    #[error("{} is not a JWK: {source}", path.display())]
    NotJwk {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The JWK has no private part (`d`).
    #[error("{} is a public key; signing needs the private JWK", path.display())]
    Public {
        /// The file.
        path: PathBuf,
    },
    /// The JWK is not a usable key.
    #[error("reading key {}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why the key was refused.
        source: KeyError,
    },
}

/// Writes a private JWK readable by its owner only (mode 0600); never
/// overwrites an existing file.
pub fn write_private(path: &Path, jwk: &Jwk) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let text = serde_json::to_string_pretty(jwk).map_err(std::io::Error::other)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

impl SigningKey {
    /// Reads a private JWK file (as `ricochet keys new` writes it).
    pub fn from_file(path: &Path) -> Result<SigningKey, KeyFileError> {
        let path_buf = || path.to_path_buf();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path_buf(),
            source,
        })?;
        let jwk: Jwk = serde_json::from_str(&text).map_err(|source| KeyFileError::NotJwk {
            path: path_buf(),
            source,
        })?;
        if jwk.d.is_none() {
            return Err(KeyFileError::Public { path: path_buf() });
        }
        SigningKey::from_jwk(&jwk).map_err(|source| KeyFileError::Invalid {
            path: path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn a_private_jwk_file_loads_and_a_public_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("ricochet-key-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = SigningKey::generate(Algorithm::EdDSA, "k1").unwrap();
        let private = dir.join("private.jwk");
        std::fs::write(&private, serde_json::to_string(&key.private_jwk()).unwrap()).unwrap();
        assert_eq!(SigningKey::from_file(&private).unwrap().kid(), "k1");
        let public = dir.join("public.jwk");
        std::fs::write(&public, serde_json::to_string(&key.public_jwk()).unwrap()).unwrap();
        let err = SigningKey::from_file(&public).unwrap_err();
        assert!(matches!(err, KeyFileError::Public { .. }), "{err}");
        let missing = SigningKey::from_file(&dir.join("none.jwk")).unwrap_err();
        assert!(matches!(missing, KeyFileError::Read { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
