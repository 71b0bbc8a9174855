//! A registry that follows its file: services hold a [`RegistryHandle`] and
//! always see the last valid version, without a restart.

use std::path::PathBuf;

use ricochet_reload::Reloading;

use crate::error::RegistryError;
use crate::model::Registry;

/// Shared, reloadable access to the registry file (`current`, `watch`,
/// `reload_if_changed` and the rest come from [`Reloading`]).
#[derive(Debug, Clone)]
pub struct RegistryHandle(Reloading<Registry, RegistryError>);

impl RegistryHandle {
    /// Loads the file; fails if it is missing or invalid (a service must not start without it).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        Reloading::open("registry", path, Registry::load).map(RegistryHandle)
    }
}

impl std::ops::Deref for RegistryHandle {
    type Target = Reloading<Registry, RegistryError>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
