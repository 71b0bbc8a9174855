//! The ARF report corpus (tests/arf/) with its placeholders filled in.

use std::path::PathBuf;

use base64::Engine;

/// A corpus file with its placeholders filled in for `token`.
pub fn report(name: &str, token: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/arf")
        .join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&text).into_owned();
    let third = token.len() / 3;
    let folded = format!(
        "{}\r\n {}\r\n {}",
        &token[..third],
        &token[third..2 * third],
        &token[2 * third..]
    );
    let qp = wrap(token, 60, "=\r\n");
    let original = format!("From: news@esp-live.example\r\nSubject: x\r\nComplaint-Token: {token}\r\nTo: user@mail.example\r\n\r\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(original);
    let b64 = wrap(&b64, 76, "\r\n");
    text.replace("{{TOKEN_FOLDED}}", &folded)
        .replace("{{TOKEN_QP}}", &qp)
        .replace("{{ORIGINAL_B64}}", &b64)
        .replace("{{TOKEN}}", token)
        .into_bytes()
}

/// `s` cut every `width` characters, the pieces joined by `sep`.
fn wrap(s: &str, width: usize, sep: &str) -> String {
    s.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}
