//! What the MTA tells a milter about the message in hand: the SASL login,
//! the envelope, and the headers, in order.

use mail_parser::MessageParser;
use miltr_common::modifications::headers::ChangeHeader;
use miltr_common::modifications::ModificationResponseBuilder;
use miltr_common::optneg::{Capability, OptNeg, Protocol};
use miltr_common::ProtocolError;

/// Most headers kept for one message (a message with more still passes; the
/// extra headers are not looked at).
pub const MAX_HEADERS: usize = 1_000;

/// One SMTP transaction as the milter sees it.
#[derive(Debug, Default, Clone)]
pub struct Transaction {
    /// The authenticated SASL login (`{auth_authen}`), if any.
    pub sasl_login: Option<String>,
    /// The envelope sender, without angle brackets.
    pub mail_from: Option<String>,
    /// The envelope recipients, without angle brackets.
    pub recipients: Vec<String>,
    /// The headers in order: (name, value).
    pub headers: Vec<(String, String)>,
}

impl Transaction {
    /// Forgets the message (a new one starts on the same connection), but
    /// keeps nothing either: the SASL login is sent again with each MAIL.
    pub fn reset(&mut self) {
        *self = Transaction::default();
    }

    /// Records a header, up to [`MAX_HEADERS`].
    pub fn push_header(&mut self, name: &str, value: &str) {
        if self.headers.len() < MAX_HEADERS {
            self.headers.push((name.to_string(), value.to_string()));
        }
    }

    /// The values of the headers named `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of header `name`, trimmed, if present and not empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name)
            .map(str::trim)
            .find(|v| !v.is_empty())
    }

    /// Asks the MTA to delete every header named `name`: the protocol
    /// addresses the n-th header of a name, so the last goes first and the
    /// indexes of the others do not move.
    pub fn delete_all(&self, name: &str, builder: &mut ModificationResponseBuilder) {
        let count = self.header_values(name).count();
        for index in (1..=count).rev() {
            builder.push(ChangeHeader::new(index as u32, name.as_bytes(), b""));
        }
    }

    /// The domain of the RFC 5322.From address, lower-cased, if there is
    /// exactly one From address with a domain.
    pub fn from_domain(&self) -> Option<String> {
        let value = self.header("From")?;
        let raw = format!("From: {value}\r\n\r\n");
        let message = MessageParser::default().parse(raw.as_bytes())?;
        let from = message.from()?;
        let mut addresses = from.iter();
        let first = addresses.next()?;
        if addresses.next().is_some() {
            return None;
        }
        let address = first.address()?;
        let (_, domain) = address.rsplit_once('@')?;
        Some(domain.trim().to_ascii_lowercase()).filter(|d| !d.is_empty())
    }
}

/// Option negotiation for both modes: the MTA need not send what no mode
/// reads (the connection, HELO, DATA, unknown commands and the body: a
/// token covers headers and envelope only), which saves a round trip per
/// stage and the body's bytes; `capabilities` are the modifications the
/// mode makes.
pub fn negotiate(
    theirs: OptNeg,
    capabilities: Capability,
) -> Result<OptNeg, miltr_server::Error<std::convert::Infallible>> {
    let ours = OptNeg {
        capabilities,
        protocol: Protocol::NO_CONNECT
            | Protocol::NO_HELO
            | Protocol::NO_DATA
            | Protocol::NO_UNKNOWN
            | Protocol::NO_BODY,
        ..OptNeg::default()
    };
    ours.merge_compatible(&theirs)
        .map_err(|e| ProtocolError::CompatibilityError(e).into())
}

/// An SMTP path as the MTA sends it (`<a@b>`, maybe with spaces), bare.
pub fn bare_address(path: &str) -> String {
    path.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The domain part of an address, lower-cased.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase()).filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name_whatever_the_case() {
        let mut t = Transaction::default();
        t.push_header("Message-Nature", " marketing ");
        t.push_header("message-nature", "newsletter");
        t.push_header("Subject", "hi");
        assert_eq!(t.header("MESSAGE-NATURE"), Some("marketing"));
        assert_eq!(t.header_values("message-nature").count(), 2);
        assert_eq!(t.header("X-Absent"), None);
    }

    #[test]
    fn from_domain_reads_display_names_and_refuses_lists() {
        let mut t = Transaction::default();
        t.push_header("From", "\"Shop, Inc\" <News@Shop.Example.COM>");
        assert_eq!(t.from_domain().as_deref(), Some("shop.example.com"));
        let mut two = Transaction::default();
        two.push_header("From", "a@one.example, b@two.example");
        assert_eq!(two.from_domain(), None);
        assert_eq!(Transaction::default().from_domain(), None);
    }

    #[test]
    fn envelope_paths_lose_their_brackets() {
        assert_eq!(bare_address(" <Alice@Example.net> "), "Alice@Example.net");
        assert_eq!(
            domain_of("Alice@Example.NET").as_deref(),
            Some("example.net")
        );
        assert_eq!(domain_of("postmaster"), None);
    }
}
