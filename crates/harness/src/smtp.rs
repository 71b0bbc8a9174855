//! A small SMTP client, as a sending application or an MTA uses one: one
//! message to several recipients, and recipients answered `452` (too many
//! recipients, RFC 5321 §4.5.3.1.10) sent again in a new transaction —
//! which is how the sign milter's one-recipient-per-message rule is met.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One SMTP reply: its code and its text lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit code.
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

/// What happened to each recipient of a message.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Recipients whose transaction ended with a 250 to the data.
    pub accepted: Vec<String>,
    /// Recipients refused for good (5xx), or refused at the data stage, with the reply.
    pub refused: Vec<(String, Reply)>,
    /// Transactions it took.
    pub transactions: usize,
}

/// An open SMTP session.
pub struct Session {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Session {
    /// Connects and greets with EHLO.
    pub async fn connect(addr: SocketAddr) -> Result<Session> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (read, writer) = stream.into_split();
        let mut session = Session {
            reader: BufReader::new(read),
            writer,
        };
        session.expect(220).await.context("greeting")?;
        session.command("EHLO client.ricochet.test").await?;
        session.expect(250).await.context("EHLO")?;
        Ok(session)
    }

    async fn command(&mut self, line: &str) -> Result<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        Ok(())
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Result<Reply> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
            let line = line.trim_end();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .context("no reply code")?;
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply {
                    code,
                    text: text.join(" "),
                });
            }
        }
    }

    async fn expect(&mut self, code: u16) -> Result<Reply> {
        let reply = self.reply().await?;
        anyhow::ensure!(reply.code == code, "expected {code}, got {reply:?}");
        Ok(reply)
    }

    /// One transaction: the recipients the server took, the ones deferred
    /// with 452 (to retry), and the data's reply if any was taken.
    async fn transaction(
        &mut self,
        from: &str,
        rcpts: &[String],
        message: &[u8],
        outcome: &mut Outcome,
    ) -> Result<Vec<String>> {
        self.command(&format!("MAIL FROM:<{from}>")).await?;
        self.expect(250).await.context("MAIL FROM")?;
        let (mut taken, mut again) = (Vec::new(), Vec::new());
        for rcpt in rcpts {
            self.command(&format!("RCPT TO:<{rcpt}>")).await?;
            let reply = self.reply().await?;
            match reply.code {
                250 | 251 => taken.push(rcpt.clone()),
                452 => again.push(rcpt.clone()),
                _ => outcome.refused.push((rcpt.clone(), reply)),
            }
        }
        outcome.transactions += 1;
        if taken.is_empty() {
            self.command("RSET").await?;
            self.expect(250).await?;
            return Ok(again);
        }
        self.command("DATA").await?;
        self.expect(354).await.context("DATA")?;
        self.writer.write_all(&dot_stuffed(message)).await?;
        self.writer.write_all(b".\r\n").await?;
        let reply = self.reply().await?;
        if reply.code == 250 {
            outcome.accepted.extend(taken);
        } else {
            outcome
                .refused
                .extend(taken.into_iter().map(|r| (r, reply.clone())));
        }
        Ok(again)
    }

    /// Sends `message` from `from` to every recipient, in as many
    /// transactions as the server's 452s ask for.
    pub async fn send(&mut self, from: &str, rcpts: &[String], message: &[u8]) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let mut todo = rcpts.to_vec();
        while !todo.is_empty() {
            let again = self.transaction(from, &todo, message, &mut outcome).await?;
            anyhow::ensure!(
                again.len() < todo.len(),
                "the server deferred every recipient with 452"
            );
            todo = again;
        }
        Ok(outcome)
    }

    /// Ends the session.
    pub async fn quit(mut self) -> Result<()> {
        self.command("QUIT").await?;
        self.reply().await.map(|_| ())
    }
}

/// The message with CRLF line ends, lines starting with `.` doubled, and a
/// final line end (RFC 5321 §4.5.2).
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let mut out = String::with_capacity(message.len() + 64);
    for line in text.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Sends one message in a session of its own.
pub async fn send(addr: SocketAddr, from: &str, rcpts: &[&str], message: &str) -> Result<Outcome> {
    let mut session = Session::connect(addr).await?;
    let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
    let outcome = session.send(from, &rcpts, message.as_bytes()).await?;
    session.quit().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_are_stuffed_and_lines_end_in_crlf() {
        assert_eq!(
            dot_stuffed(b"Subject: x\n\n.hidden\nend"),
            b"Subject: x\r\n\r\n..hidden\r\nend\r\n".to_vec()
        );
    }
}
