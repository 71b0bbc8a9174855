use std::path::PathBuf;

use thiserror::Error;

/// Why a registry file could not be read or changed.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a field has the wrong type (the message names line and column).
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A field's value breaks a rule.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}
