//! A registry that follows its file: services hold a [`RegistryHandle`] and
//! always see the last valid version, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::error::RegistryError;
use crate::model::Registry;

/// Shared, reloadable access to the registry file.
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    path: PathBuf,
    inner: Arc<RwLock<Loaded>>,
}

#[derive(Debug)]
struct Loaded {
    registry: Arc<Registry>,
    /// File modification time and length when loaded: cheap change detection.
    stamp: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl RegistryHandle {
    /// Loads the file; fails if it is missing or invalid (a service must not start without it).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let path = path.into();
        let stamp = stamp(&path);
        let registry = Arc::new(Registry::load(&path)?);
        Ok(RegistryHandle {
            path,
            inner: Arc::new(RwLock::new(Loaded { registry, stamp })),
        })
    }

    /// The current registry (a snapshot: later reloads do not change it).
    pub fn current(&self) -> Arc<Registry> {
        self.inner.read().expect("registry lock").registry.clone()
    }

    /// The file this handle follows.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads if the file changed. An invalid new version is refused and the
    /// previous one stays in force. Returns whether a new version was loaded.
    pub fn reload_if_changed(&self) -> Result<bool, RegistryError> {
        let now = stamp(&self.path);
        if now.is_some() && now == self.inner.read().expect("registry lock").stamp {
            return Ok(false);
        }
        self.reload().map(|_| true)
    }

    /// Reloads unconditionally; on error the previous version stays in force.
    pub fn reload(&self) -> Result<(), RegistryError> {
        let stamp = stamp(&self.path);
        let registry = Arc::new(Registry::load(&self.path)?);
        *self.inner.write().expect("registry lock") = Loaded { registry, stamp };
        info!(path = %self.path.display(), "registry reloaded");
        Ok(())
    }

    /// Starts a thread that checks the file every `interval` and reloads it
    /// when it changes, for the rest of the process's life (nothing stops it).
    pub fn watch(&self, interval: Duration) {
        let handle = self.clone();
        std::thread::Builder::new()
            .name("registry-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                if let Err(e) = handle.reload_if_changed() {
                    warn!(error = %e, "registry file changed but is invalid; keeping the previous version");
                }
            })
            .expect("spawn registry watcher");
    }
}
