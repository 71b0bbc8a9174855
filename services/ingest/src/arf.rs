//! RFC 5965 Abuse Reporting Format: existing feedback loops feed Ricochet.
//!
//! A report is `multipart/report; report-type=feedback-report` with a
//! human-readable part, a `message/feedback-report` part (`Feedback-Type`,
//! `Arrival-Date`, ...) and the original message, whole (`message/rfc822`)
//! or its header only (`text/rfc822-headers`). The original carries the
//! `Complaint-Token` header the ESP added. MIME (folding, base64,
//! quoted-printable, nesting) is left to the `mail-parser` crate.

use mail_parser::{Message, MessageParser, MimeHeaders};

use crate::complaints::{ComplaintItem, Rejection};

/// Why a body is not a feedback report at all (the whole request fails, 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArfError {
    /// The body does not parse as a MIME message.
    #[error("the body is not a MIME message")]
    NotMime,
    /// The message is not `multipart/report; report-type=feedback-report`.
    #[error("not an ARF report: content type {0}")]
    NotFeedbackReport(String),
    /// No `message/feedback-report` part.
    #[error("the report has no message/feedback-report part")]
    NoFeedbackPart,
    /// The MIME parser gave up on the structure.
    #[error("the MIME structure cannot be parsed")]
    Unparseable,
}

impl ArfError {
    /// Machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ArfError::NotMime => "not-mime",
            ArfError::NotFeedbackReport(_) => "not-feedback-report",
            ArfError::NoFeedbackPart => "no-feedback-part",
            ArfError::Unparseable => "unparseable",
        }
    }
}

/// What Ricochet reads from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArfReport {
    /// `Feedback-Type`, lower-cased.
    pub feedback_type: String,
    /// `Arrival-Date` (or the older `Received-Date`) as Unix ms, if present and valid.
    pub arrival_ms: Option<i64>,
    /// The original message's `Complaint-Token`, unfolded.
    pub token: Option<String>,
}

/// The complaint code a feedback type maps to (`None`: not a complaint Ricochet takes).
///
/// abuse → unwanted, fraud → phishing, virus → phishing, not-spam →
/// not-spam, other → unwanted; auth-failure (a DMARC/SPF/DKIM failure
/// report, not a user's complaint) and unknown types are refused.
pub fn code_for(feedback_type: &str) -> Option<&'static str> {
    match feedback_type {
        "abuse" | "other" => Some("unwanted"),
        "fraud" | "virus" => Some("phishing"),
        "not-spam" => Some("not-spam"),
        _ => None,
    }
}

fn is(ct: Option<&mail_parser::ContentType>, ctype: &str, subtype: &str) -> bool {
    ct.is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case(ctype)
            && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

/// A header field's value with folding and all whitespace removed (tokens
/// have none).
fn unfolded(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Finds the report in `message`, or in a message it encloses (a loop that
/// forwards reports wraps them once more).
fn find_report<'a, 'x>(message: &'a Message<'x>, depth: usize) -> Option<&'a Message<'x>> {
    let ct = message.content_type();
    if is(ct, "multipart", "report") {
        return Some(message);
    }
    if depth >= 3 {
        return None;
    }
    message
        .parts
        .iter()
        .filter_map(|p| p.message())
        .find_map(|m| find_report(m, depth + 1))
}

/// MIME-parses `bytes`. mail-parser 0.11.9 panics on some malformed nesting
/// ("Invalid part ID, could not find multipart"; found by fuzzing, the input
/// is in tests/arf/): only its own call is guarded, so bad input is a
/// refusal and a bug of ours still shows.
fn mime(bytes: &[u8]) -> Result<Option<Message<'_>>, ArfError> {
    std::panic::catch_unwind(|| MessageParser::default().parse(bytes))
        .map_err(|_| ArfError::Unparseable)
}

/// Parses one report.
pub fn parse(bytes: &[u8]) -> Result<ArfReport, ArfError> {
    let message = mime(bytes)?.ok_or(ArfError::NotMime)?;
    if message.parts.is_empty() || message.content_type().is_none() {
        return Err(ArfError::NotMime);
    }
    let Some(report) = find_report(&message, 0) else {
        let ct = message
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        return Err(ArfError::NotFeedbackReport(ct));
    };
    let report_type = report
        .content_type()
        .and_then(|c| c.attribute("report-type"))
        .unwrap_or("");
    if !report_type.eq_ignore_ascii_case("feedback-report") {
        return Err(ArfError::NotFeedbackReport(format!(
            "multipart/report; report-type={report_type}"
        )));
    }
    let mut fields = None;
    let mut token = None;
    for part in &report.parts {
        let ct = part.content_type();
        if is(ct, "message", "feedback-report") {
            let text = part.text_contents().unwrap_or("");
            fields = mime(text.as_bytes())?.map(|m| {
                let field = |name: &str| m.header_raw(name).map(|v| v.trim().to_string());
                (
                    field("Feedback-Type"),
                    field("Arrival-Date").or_else(|| field("Received-Date")),
                )
            });
        } else if token.is_none() && (is(ct, "message", "rfc822") || is(ct, "message", "global")) {
            token = part
                .message()
                .and_then(|m| m.header_raw("Complaint-Token"))
                .map(unfolded);
        } else if token.is_none() && is(ct, "text", "rfc822-headers") {
            let text = part.text_contents().unwrap_or("");
            token =
                mime(text.as_bytes())?.and_then(|m| m.header_raw("Complaint-Token").map(unfolded));
        }
    }
    let (feedback_type, arrival) = fields.ok_or(ArfError::NoFeedbackPart)?;
    Ok(ArfReport {
        feedback_type: feedback_type.unwrap_or_default().to_ascii_lowercase(),
        arrival_ms: arrival
            .as_deref()
            .and_then(mail_parser::DateTime::parse_rfc822)
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp() * 1000),
        token: token.filter(|t| !t.is_empty()),
    })
}

/// The complaint a report makes, or why it makes none: `no-token` (the
/// original message carries no Complaint-Token), `unsupported-feedback-type`.
/// Without an Arrival-Date the complaint is dated `received_at_ms`.
pub fn to_complaint(report: &ArfReport, received_at_ms: i64) -> Result<ComplaintItem, Rejection> {
    let code = code_for(&report.feedback_type).ok_or_else(|| {
        Rejection::new(
            "unsupported-feedback-type",
            format!(
                "Feedback-Type {:?} is not a complaint (taken: abuse, fraud, virus, not-spam, other)",
                report.feedback_type
            ),
        )
    })?;
    let token = report.token.clone().ok_or_else(|| {
        Rejection::new(
            "no-token",
            "the reported message carries no Complaint-Token header",
        )
    })?;
    let at = report
        .arrival_ms
        .unwrap_or(received_at_ms)
        .min(received_at_ms);
    let reported_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(ComplaintItem {
        token,
        code: code.into(),
        reported_at,
        reporter: None,
        recipient_proof: None,
    })
}
