//! Errors as `application/problem+json` (RFC 9457), each with a machine-readable `reason`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem details document. `type` is `urn:ricochet:problem:<reason>`.
/// Boxed: it travels in `Result::Err` through every handler.
#[derive(Debug, Clone)]
pub struct Problem(Box<Details>);

#[derive(Debug, Clone, Serialize)]
struct Details {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    reason: &'static str,
    detail: String,
    /// For a malformed body: where in the JSON the error is.
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<JsonLocation>,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
    #[serde(skip)]
    challenge: bool,
}

/// Where a JSON body went wrong.
#[derive(Debug, Clone, Serialize)]
pub struct JsonLocation {
    /// Path of the offending value, e.g. `complaints[3].code` (`.` for the document).
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Problem {
    /// A problem with `status`, `reason` and a human-readable `detail`.
    pub fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        Problem(Box::new(Details {
            kind: format!("urn:ricochet:problem:{reason}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            reason,
            detail: detail.into(),
            location: None,
            retry_after_secs: None,
            challenge: false,
        }))
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(reason: &'static str, detail: impl Into<String>) -> Self {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, reason, detail);
        p.0.challenge = true;
        p
    }

    /// The machine-readable reason.
    pub fn reason(&self) -> &'static str {
        self.0.reason
    }

    /// Adds a `Retry-After` header (429, 503).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_secs = Some(secs.max(1));
        self
    }

    /// Adds the JSON location of a malformed body.
    pub fn at(mut self, location: JsonLocation) -> Self {
        self.0.location = Some(location);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.0.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.0.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.0.reason
                ))
                .unwrap_or(HeaderValue::from_static("Bearer")),
            );
        }
        resp
    }
}
