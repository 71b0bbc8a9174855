//! The send log: which recipient each token was minted for. Only the ESP
//! knows it (the token carries a one-way binding, `rcb`), and it is what
//! turns the complaint feed into a suppression list. One `jti,recipient`
//! line per minted token, appended.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Why a send log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SendLogError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A recipient that would break the line format.
    #[error("recipient {0:?} contains a comma, a line break or nothing: not logged")]
    BadRecipient(String),
    /// A line that is not `jti,recipient`.
    #[error("{path}:{line}: expected `jti,recipient`")]
    BadLine {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// A send log open for appending.
#[derive(Debug)]
pub struct SendLog {
    path: PathBuf,
    file: File,
}

impl SendLog {
    /// Opens (creating if needed) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<SendLog, SendLogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SendLogError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SendLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one `jti,recipient` line (one write: appends of whole lines
    /// from several processes do not interleave).
    pub fn record(&mut self, jti: &str, recipient: &str) -> Result<(), SendLogError> {
        let recipient = recipient.trim();
        if recipient.is_empty() || recipient.contains([',', '\n', '\r']) {
            return Err(SendLogError::BadRecipient(recipient.to_string()));
        }
        self.file
            .write_all(format!("{jti},{recipient}\n").as_bytes())
            .map_err(|source| SendLogError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads a send log into jti → recipient (a jti logged twice keeps its
/// last recipient).
pub fn read_send_log(path: &Path) -> Result<HashMap<String, String>, SendLogError> {
    let io = |source| SendLogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut out = HashMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((jti, recipient)) = line.split_once(',') else {
            return Err(SendLogError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
            });
        };
        if jti.is_empty() || recipient.trim().is_empty() {
            return Err(SendLogError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        out.insert(jti.to_string(), recipient.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_and_read_back_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sent.log");
        let mut log = SendLog::open(&path).unwrap();
        log.record("j1", "Alice@Example.com").unwrap();
        log.record("j2", "bob@example.net").unwrap();
        assert!(matches!(
            log.record("j3", "a,b@example.com"),
            Err(SendLogError::BadRecipient(_))
        ));
        drop(log);
        SendLog::open(&path)
            .unwrap()
            .record("j4", "carol@example.org")
            .unwrap();
        let read = read_send_log(&path).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read["j1"], "Alice@Example.com");
        std::fs::write(&path, "j1,alice@example.com\nno-comma\n").unwrap();
        let err = read_send_log(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("sent.log:2: expected `jti,recipient`"),
            "{err}"
        );
    }
}
