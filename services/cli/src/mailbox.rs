//! Messages on disk, as providers keep them: one file, a maildir (its
//! `cur/` and `new/`), or a folder of message files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The message files at `path`, sorted.
pub fn message_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let maildir = ["cur", "new"].iter().any(|d| path.join(d).is_dir());
    let dirs: Vec<PathBuf> = if maildir {
        ["cur", "new"]
            .iter()
            .map(|d| path.join(d))
            .filter(|d| d.is_dir())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = vec![];
    for dir in dirs {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let p = entry?.path();
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    anyhow::ensure!(!out.is_empty(), "no message files in {}", path.display());
    Ok(out)
}

/// The header section of a message, unfolded: (name, value) in order.
pub fn headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// What the complaint button needs of a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The `Complaint-Token` value (folding spaces removed), if exactly one.
    pub token: Option<String>,
    /// The address it was delivered to: the topmost `Delivered-To`, else
    /// `X-Original-To`.
    pub recipient: Option<String>,
}

impl Delivered {
    /// Reads a delivered message's headers.
    pub fn read(message: &[u8]) -> Delivered {
        let headers = headers(message);
        let named = |n: &'static str| {
            headers
                .iter()
                .filter(move |(name, _)| name.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let tokens: Vec<String> = named(ricochet_token::HEADER_NAME)
            .map(|v| v.split_whitespace().collect())
            .collect();
        let recipient = named("Delivered-To")
            .next()
            .or_else(|| named("X-Original-To").next())
            .map(|r| r.trim_matches(['<', '>', ' ']).to_string());
        Delivered {
            token: (tokens.len() == 1).then(|| tokens[0].clone()),
            recipient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_message_gives_its_token_and_recipient() {
        let m = b"Return-Path: <a@b>\r\nDelivered-To: Alice@Example.net\r\nX-Original-To: list@example.net\r\nComplaint-Token: aaa.\r\n bbb.ccc\r\nSubject: x\r\n\r\nComplaint-Token: body.is.ignored\r\n";
        let d = Delivered::read(m);
        assert_eq!(d.token.as_deref(), Some("aaa.bbb.ccc"));
        assert_eq!(d.recipient.as_deref(), Some("Alice@Example.net"));
        let two = Delivered::read(b"Complaint-Token: a.b.c\nComplaint-Token: d.e.f\n\n");
        assert_eq!((two.token, two.recipient), (None, None));
    }
}
