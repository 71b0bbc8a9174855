//! A directory of published policies, with their history:
//!
//! ```text
//! DIR/example.org.json                     the version in force
//! DIR/history/example.org/1796083200.json  earlier versions, by effective_from
//! ```
//! [`publish`] writes a new version and moves the old one into the
//! history, so a complaint can be judged by the policy in force when its
//! token was issued. Services hold a [`PolicyStore`], which rereads the
//! directory when it changes; an invalid change is refused and the
//! previous policies stay in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ricochet_reload::Reloading;

use crate::model::RecipientPolicy;
use crate::parse::PolicyError;

/// Why a policy directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A policy file is invalid.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        error: PolicyError,
    },
    /// A file whose name is not the domain its policy is for.
    #[error("{path}: holds the policy of {domain}; name it {domain}.json")]
    Misnamed {
        /// The file.
        path: PathBuf,
        /// The domain inside.
        domain: String,
    },
    /// A new version that would take effect before the one in force.
    #[error("{domain}: effective_from {new} is before the version in force ({current}); history is not rewritten")]
    Backdated {
        /// The domain.
        domain: String,
        /// The new version's effective_from.
        new: String,
        /// The current version's effective_from.
        current: String,
    },
}

/// Every version of every domain's policy, oldest first per domain.
#[derive(Debug, Default, Clone)]
pub struct Policies {
    by_domain: BTreeMap<String, Vec<(i64, Arc<RecipientPolicy>)>>,
}

impl Policies {
    /// Reads a policy directory.
    pub fn load(dir: &Path) -> Result<Policies, StoreError> {
        let mut policies = Policies::default();
        for (path, policy) in read_dir_policies(dir)? {
            policies.insert(&path, policy)?;
        }
        let history = dir.join("history");
        if history.is_dir() {
            for entry in list(&history)? {
                if entry.is_dir() {
                    for (path, policy) in read_dir_policies(&entry)? {
                        policies.insert(&path, policy)?;
                    }
                }
            }
        }
        for versions in policies.by_domain.values_mut() {
            versions.sort_by_key(|(t, _)| *t);
        }
        Ok(policies)
    }

    fn insert(&mut self, path: &Path, policy: RecipientPolicy) -> Result<(), StoreError> {
        let invalid = |error| StoreError::Invalid {
            path: path.into(),
            error,
        };
        let since = policy.effective_from_secs().map_err(invalid)?;
        self.by_domain
            .entry(policy.domain.clone())
            .or_default()
            .push((since, Arc::new(policy)));
        Ok(())
    }

    /// The version in force now (the latest one), if the domain has a policy.
    pub fn current(&self, domain: &str) -> Option<Arc<RecipientPolicy>> {
        self.by_domain.get(domain)?.last().map(|(_, p)| p.clone())
    }

    /// The version in force at `unix_secs`, if there was one.
    pub fn at(&self, domain: &str, unix_secs: i64) -> Option<Arc<RecipientPolicy>> {
        self.by_domain
            .get(domain)?
            .iter()
            .rev()
            .find(|(since, _)| *since <= unix_secs)
            .map(|(_, p)| p.clone())
    }

    /// How many domains have a policy.
    pub fn domains(&self) -> usize {
        self.by_domain.len()
    }
}

/// The `*.json` files directly in `dir`, parsed; each must be named for its domain.
fn read_dir_policies(dir: &Path) -> Result<Vec<(PathBuf, RecipientPolicy)>, StoreError> {
    let mut out = Vec::new();
    for path in list(dir)? {
        if path.extension().is_none_or(|e| e != "json") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let policy = RecipientPolicy::parse(&text).map_err(|error| StoreError::Invalid {
            path: path.clone(),
            error,
        })?;
        let in_history = dir.file_name().is_some_and(|d| *d == *policy.domain);
        let named = path.file_stem().is_some_and(|s| *s == *policy.domain);
        if !named && !in_history {
            return Err(StoreError::Misnamed {
                path,
                domain: policy.domain,
            });
        }
        out.push((path, policy));
    }
    Ok(out)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let io = |source| StoreError::Io {
        path: dir.into(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    Ok(paths)
}

/// A policy directory that services read, reloaded when it changes
/// (`current`, `watch`, `reload_if_changed` come from [`Reloading`]).
#[derive(Debug, Clone)]
pub struct PolicyStore(Reloading<Policies, StoreError>);

impl PolicyStore {
    /// Loads `dir` (created if missing); an invalid file is refused at start.
    pub fn open(dir: &Path) -> Result<PolicyStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.into(),
            source,
        })?;
        Reloading::open("recipient policies", dir, Policies::load).map(PolicyStore)
    }
}

impl std::ops::Deref for PolicyStore {
    type Target = Reloading<Policies, StoreError>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Publishes `text` as the new version of its domain's policy in `dir`:
/// validated, never back-dated before the version in force, which moves to
/// the history. Returns the published policy.
pub fn publish(dir: &Path, text: &str) -> Result<RecipientPolicy, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let policy = RecipientPolicy::parse(text).map_err(|error| StoreError::Invalid {
        path: PathBuf::from("(new policy)"),
        error,
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = dir.join(format!("{}.json", policy.domain));
    if let Some(current) = Policies::load(dir)?.current(&policy.domain) {
        let (old, new) = (current.effective_from_secs(), policy.effective_from_secs());
        if let (Ok(old), Ok(new)) = (old, new) {
            if new < old {
                return Err(StoreError::Backdated {
                    domain: policy.domain,
                    new: policy.effective_from,
                    current: current.effective_from.clone(),
                });
            }
            let history = dir.join("history").join(&policy.domain);
            std::fs::create_dir_all(&history).map_err(io(&history))?;
            let kept = history.join(format!("{old}.json"));
            std::fs::rename(&target, &kept).map_err(io(&kept))?;
        }
    }
    let tmp = dir.join(format!(".{}.json.tmp", policy.domain));
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_token::Nature;

    fn doc(since: &str, refuse: &str) -> String {
        format!(
            r#"{{"version": 1, "domain": "example.org", "effective_from": "{since}", "natures": {{"refuse": ["{refuse}"]}}}}"#
        )
    }

    #[test]
    fn publishing_keeps_history_and_judges_by_issue_time() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), &doc("2026-12-01T00:00:00Z", "marketing")).unwrap();
        publish(dir.path(), &doc("2026-12-02T00:00:00Z", "newsletter")).unwrap();
        let e = publish(dir.path(), &doc("2026-11-01T00:00:00Z", "account")).unwrap_err();
        assert!(matches!(e, StoreError::Backdated { .. }), "{e}");
        let p = Policies::load(dir.path()).unwrap();
        let dec1 = 1_796_083_200 + 3600;
        assert!(!p
            .at("example.org", dec1)
            .unwrap()
            .natures
            .accepts(Nature::Marketing));
        assert!(p
            .at("example.org", dec1)
            .unwrap()
            .natures
            .accepts(Nature::Newsletter));
        assert!(!p
            .current("example.org")
            .unwrap()
            .natures
            .accepts(Nature::Newsletter));
        assert!(p.at("example.org", 1_796_083_200 - 1).is_none());
        assert!(p.current("example.net").is_none());
    }

    #[test]
    fn the_store_follows_the_directory_and_refuses_bad_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        assert!(store.current().current("example.org").is_none());
        publish(dir.path(), &doc("2026-12-01T00:00:00Z", "marketing")).unwrap();
        assert!(store.reload_if_changed().unwrap());
        assert!(store.current().current("example.org").is_some());
        std::fs::write(dir.path().join("example.net.json"), "{").unwrap();
        let e = store.reload_if_changed().unwrap_err().to_string();
        assert!(e.contains("example.net.json: line 1"), "{e}");
        assert!(store.current().current("example.org").is_some());
        std::fs::write(
            dir.path().join("example.net.json"),
            doc("2026-12-01T00:00:00Z", "account"),
        )
        .unwrap();
        let e = store.reload_if_changed().unwrap_err();
        assert!(matches!(e, StoreError::Misnamed { .. }), "{e}");
    }
}
