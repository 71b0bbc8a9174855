//! The sign milter's sender map: which sender id (the tokens' `sub`) a
//! message is sent for, from what the MTA authenticated, never from what
//! the message says about itself.
//!
//! ```toml
//! [sasl]                      # authenticated SASL login -> sender id
//! "shop42" = "shop-42"
//! [envelope]                  # envelope sender address, or @domain -> sender id
//! "news@shop.example.com" = "shop-42"
//! "@bakery.example" = "bakery-7"
//! ```
//! The SASL login wins over the envelope sender; an exact address wins
//! over its domain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ricochet_reload::Reloading;

use ricochet_token::claims::is_sender_id;
use serde::Deserialize;

/// Why a sender map could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SenderMapError {
    /// The file could not be read, or is not the TOML described in the
    /// module docs.
    #[error(transparent)]
    File(#[from] ricochet_reload::FileError),
    /// A value that is not a valid sender id.
    #[error(
        "{path}: [{table}] {key:?}: {value:?} is not a sender id (1-128 of A-Z a-z 0-9 . _ : -)"
    )]
    BadSender {
        /// The file.
        path: PathBuf,
        /// `sasl` or `envelope`.
        table: &'static str,
        /// The key.
        key: String,
        /// The refused value.
        value: String,
    },
}

/// The map as written in the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderMap {
    /// SASL login → sender id.
    #[serde(default)]
    pub sasl: BTreeMap<String, String>,
    /// Envelope sender (`user@domain` or `@domain`, lower case) → sender id.
    #[serde(default)]
    pub envelope: BTreeMap<String, String>,
}

impl SenderMap {
    /// Reads and validates a map file.
    pub fn load(path: &Path) -> Result<SenderMap, SenderMapError> {
        let text = ricochet_reload::read(path)?;
        let mut map: SenderMap =
            toml::from_str(&text).map_err(|e| ricochet_reload::FileError::syntax(path, e))?;
        map.envelope = map
            .envelope
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for (table, entries) in [("sasl", &map.sasl), ("envelope", &map.envelope)] {
            if let Some((key, value)) = entries.iter().find(|(_, v)| !is_sender_id(v)) {
                return Err(SenderMapError::BadSender {
                    path: path.into(),
                    table,
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
        Ok(map)
    }

    /// The sender id for a message: by SASL login, then envelope address,
    /// then envelope domain.
    pub fn resolve(&self, sasl_login: Option<&str>, mail_from: Option<&str>) -> Option<&str> {
        if let Some(id) = sasl_login.and_then(|l| self.sasl.get(l)) {
            return Some(id);
        }
        let from = mail_from?.to_ascii_lowercase();
        if let Some(id) = self.envelope.get(&from) {
            return Some(id);
        }
        let (_, domain) = from.rsplit_once('@')?;
        self.envelope.get(&format!("@{domain}")).map(String::as_str)
    }
}

/// A sender map file, reread when it changes (checked by `watch`, off the
/// mail path, as the registry and the policy store are; `current` and the
/// rest come from [`Reloading`]).
#[derive(Debug, Clone)]
pub struct SenderMapFile(Reloading<SenderMap, SenderMapError>);

impl SenderMapFile {
    /// Loads `path`; an invalid file is refused at start.
    pub fn open(path: &Path) -> Result<SenderMapFile, SenderMapError> {
        Reloading::open("sender map", path, SenderMap::load).map(SenderMapFile)
    }
}

impl std::ops::Deref for SenderMapFile {
    type Target = Reloading<SenderMap, SenderMapError>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_beats_address_beats_domain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("senders.toml");
        std::fs::write(
            &path,
            "[sasl]\nshop = \"shop-42\"\n[envelope]\n\"News@Shop.example\" = \"shop-news\"\n\"@shop.example\" = \"shop-any\"\n",
        )
        .unwrap();
        let map = SenderMap::load(&path).unwrap();
        assert_eq!(
            map.resolve(Some("shop"), Some("x@shop.example")),
            Some("shop-42")
        );
        assert_eq!(
            map.resolve(None, Some("news@shop.example")),
            Some("shop-news")
        );
        assert_eq!(
            map.resolve(Some("other"), Some("x@SHOP.example")),
            Some("shop-any")
        );
        assert_eq!(map.resolve(None, Some("x@elsewhere.example")), None);
        assert_eq!(map.resolve(None, None), None);
    }

    #[test]
    fn bad_files_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("senders.toml");
        std::fs::write(&path, "[sasl]\nshop = \"not a sender\"\n").unwrap();
        let e = SenderMap::load(&path).unwrap_err().to_string();
        assert!(e.contains("[sasl] \"shop\""), "{e}");
        std::fs::write(&path, "[sasl\n").unwrap();
        let e = SenderMap::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        std::fs::write(&path, "[other]\n").unwrap();
        assert!(SenderMap::load(&path).is_err());
    }

    #[test]
    fn a_changed_file_is_reread_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("senders.toml");
        std::fs::write(&path, "[sasl]\na = \"one\"\n").unwrap();
        let file = SenderMapFile::open(&path).unwrap();
        assert_eq!(file.current().resolve(Some("a"), None), Some("one"));
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&path, "[sasl]\na = \"two\"\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(file.reload_if_changed().unwrap());
        assert_eq!(file.current().resolve(Some("a"), None), Some("two"));
        std::fs::write(&path, "[sasl\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(file.reload_if_changed().is_err());
        assert_eq!(file.current().resolve(Some("a"), None), Some("two"));
    }
}
