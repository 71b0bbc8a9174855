//! A value loaded from a file or a directory that follows it: services hold
//! a [`Reloading`] and always see the last valid version, without a restart.
//!
//! The registry, the recipient policies and the milter's sender map are all
//! read this way. A change is noticed by a cheap [`Fingerprint`] (every
//! file's modification time and length), checked by a watcher thread; a new
//! version that does not load is refused and the previous one stays in force.

mod file;

pub use file::{read, FileError};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Every file under a path (the file itself, or a directory tree) with its
/// modification time, length and inode: what tells that something changed.
/// The inode tells a file replaced by rename (the documented way to edit)
/// even when the new one has the same length and, timestamps being coarse,
/// the same modification time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, Option<SystemTime>, u64, u64)>);

impl Fingerprint {
    /// The fingerprint of `path` now (empty if it does not exist).
    pub fn of(path: &Path) -> Fingerprint {
        let mut out = Vec::new();
        let mut todo = vec![path.to_path_buf()];
        while let Some(p) = todo.pop() {
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if !meta.is_dir() {
                out.push((p, meta.modified().ok(), meta.len(), inode(&meta)));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&p) else {
                continue;
            };
            todo.extend(entries.flatten().map(|e| e.path()));
        }
        out.sort();
        Fingerprint(out)
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// How a [`Reloading`] value is read from its path.
type Loader<T, E> = dyn Fn(&Path) -> Result<T, E> + Send + Sync;

/// A value read from `path`, shared and reloaded when the path changes.
pub struct Reloading<T, E> {
    path: PathBuf,
    what: &'static str,
    load: Arc<Loader<T, E>>,
    current: Arc<RwLock<(Fingerprint, Arc<T>)>>,
}

impl<T, E> Clone for Reloading<T, E> {
    fn clone(&self) -> Self {
        Reloading {
            path: self.path.clone(),
            what: self.what,
            load: self.load.clone(),
            current: self.current.clone(),
        }
    }
}

impl<T, E> std::fmt::Debug for Reloading<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("path", &self.path)
            .finish()
    }
}

impl<T, E> Reloading<T, E>
where
    T: Send + Sync + 'static,
    E: std::fmt::Display + 'static,
{
    /// Loads `path` with `load`; fails if that fails (a service must not
    /// start without a valid version). `what` names the value in logs.
    pub fn open(
        what: &'static str,
        path: impl Into<PathBuf>,
        load: impl Fn(&Path) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, E> {
        let path = path.into();
        let seen = Fingerprint::of(&path);
        let value = Arc::new(load(&path)?);
        Ok(Reloading {
            path,
            what,
            load: Arc::new(load),
            current: Arc::new(RwLock::new((seen, value))),
        })
    }

    /// The version in force (a snapshot: later reloads do not change it).
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// The path this value follows.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads if the path changed. Returns whether a new version was
    /// loaded; an invalid one is refused and the previous one kept (and not
    /// tried again until the path changes once more).
    pub fn reload_if_changed(&self) -> Result<bool, E> {
        let seen = Fingerprint::of(&self.path);
        if seen == self.current.read().unwrap_or_else(|e| e.into_inner()).0 {
            return Ok(false);
        }
        self.replace(seen).map(|_| true)
    }

    /// Reloads whether or not the path changed; on error the previous
    /// version stays in force.
    pub fn reload(&self) -> Result<(), E> {
        self.replace(Fingerprint::of(&self.path))
    }

    fn replace(&self, seen: Fingerprint) -> Result<(), E> {
        let loaded = (self.load)(&self.path);
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        guard.0 = seen;
        guard.1 = Arc::new(loaded?);
        tracing::info!(path = %self.path.display(), "{} reloaded", self.what);
        Ok(())
    }

    /// Starts a thread that checks the path every `interval` and reloads
    /// it when it changed, for the rest of the process's life (nothing
    /// stops it).
    pub fn watch(&self, interval: Duration) {
        let me = self.clone();
        std::thread::Builder::new()
            .name(format!("{}-watch", self.what.replace(' ', "-")))
            .spawn(move || loop {
                std::thread::sleep(interval);
                if let Err(e) = me.reload_if_changed() {
                    tracing::warn!(error = %e, path = %me.path.display(), "{} changed but is invalid; keeping the previous version", me.what);
                }
            })
            .expect("spawn a watcher thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(path: &Path) -> Result<u32, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|e| format!("{e}"))
    }

    #[test]
    fn a_file_replaced_by_rename_is_seen_with_the_same_length_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        std::fs::write(&path, "1").unwrap();
        let value = Reloading::open("number", &path, number).unwrap();
        let tmp = dir.path().join("n.txt.new");
        std::fs::write(&tmp, "2").unwrap();
        // Same length, and the time of the file it replaces: as when both
        // writes fall within one tick of the file system's clock.
        let old_time = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(old_time)
            .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(value.reload_if_changed().unwrap());
        assert_eq!(*value.current(), 2);
    }

    #[test]
    fn follows_the_file_and_keeps_the_last_valid_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        std::fs::write(&path, "1").unwrap();
        let value = Reloading::open("number", &path, number).unwrap();
        assert_eq!(*value.current(), 1);
        assert!(!value.reload_if_changed().unwrap());
        std::fs::write(&path, "22").unwrap();
        assert!(value.reload_if_changed().unwrap());
        assert_eq!(*value.current(), 22);
        std::fs::write(&path, "not a number").unwrap();
        assert!(value.reload_if_changed().is_err());
        assert_eq!(*value.current(), 22, "the invalid version is refused");
        assert!(
            !value.reload_if_changed().unwrap(),
            "and not retried until it changes"
        );
    }

    #[test]
    fn an_invalid_first_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.txt");
        assert!(Reloading::open("number", &path, number).is_err());
    }

    #[test]
    fn a_directory_changes_when_any_file_under_it_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let before = Fingerprint::of(dir.path());
        std::fs::write(dir.path().join("sub/a.json"), "{}").unwrap();
        let after = Fingerprint::of(dir.path());
        assert_ne!(before, after);
        assert_eq!(after, Fingerprint::of(dir.path()));
    }
}
