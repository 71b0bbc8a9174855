//! Why a settings file could not be read or parsed: the part every file
//! Ricochet reloads (registry, policy, sender map) shares.

use std::path::{Path, PathBuf};

/// A file that could not be read, or whose text is not the format it must be.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Not the format the file must have, or a field of the wrong type
    /// (the parser's message names line and column).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field's value breaks a rule.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line of the value (of the file's end for a rule across fields).
        line: usize,
        /// Dotted name of the field.
        field: String,
        /// The rule it breaks.
        message: String,
    },
}

impl FileError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A syntax error in `path` (the message's trailing newline dropped).
    pub fn syntax(path: &Path, message: impl std::fmt::Display) -> Self {
        FileError::Syntax {
            path: path.to_path_buf(),
            message: message.to_string().trim_end().to_string(),
        }
    }

    /// The value at byte `offset` of `text`, read from `path`, breaks a rule.
    pub fn invalid(
        (path, text): (&Path, &str),
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        FileError::Invalid {
            path: path.to_path_buf(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The text of `path`.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError::io(path, e))
}
