//! The three batch routes as [`BatchKind`]s: how each parses its body,
//! checks its items and keys its records. The flow they share is in
//! [`crate::flow`].

use axum::http::StatusCode;
use ricochet_kafka::records::write_sender_key;
use ricochet_kafka::{ComplaintRecord, DeliveryRecord};
use ricochet_registry::Registry;
use ricochet_token::VerifyOptions;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::AppState;
use crate::arf;
use crate::complaints::{check_batch, Checking, ComplaintBatch, ComplaintItem, Rejection};
use crate::config::{IngestConfig, SignatureCheck};
use crate::deliveries::{check_delivery, DeliveryBatch, DeliveryItem};
use crate::policy::check_policy_violation;
use ricochet_http::{JsonLocation, Problem};

/// What differs between the batch routes; the flow in [`crate::flow`] is shared.
/// Where and when a batch is checked.
pub(crate) struct CheckAt<'a> {
    pub state: &'a AppState,
    /// The authenticated provider.
    pub provider: &'a str,
    pub registry: &'a Registry,
    pub now_ms: i64,
    /// The verification pool, when checks run on it.
    pub pool: Option<&'a rayon::ThreadPool>,
}

pub(crate) trait BatchKind {
    const ROUTE: &'static str;
    fn topic(config: &IngestConfig) -> &str;
    type Item: Send + Sync + 'static;
    type Record: Serialize + Send + 'static;
    /// The items of a request body (a 400 problem if it is not one).
    fn parse(bytes: &[u8], now_ms: i64) -> Result<Vec<Self::Item>, Problem>;
    /// One verdict per item, in order (an item's strings may move into its record).
    fn check(at: &CheckAt<'_>, items: &mut [Self::Item]) -> Vec<Result<Self::Record, Rejection>>;
    /// Appends the record's message key.
    fn write_key(record: &Self::Record, out: &mut Vec<u8>);
    /// The id the response names an accepted record by, if any.
    fn into_id(record: Self::Record) -> Option<String>;
    /// Appends the record's bytes on the topic (JSON).
    fn write_payload(record: &Self::Record, out: &mut Vec<u8>) {
        serde_json::to_writer(out, record).expect("records serialize")
    }
}

/// `POST /v1/complaints`: a JSON batch of complaint tokens.
pub(crate) struct Complaints;
impl BatchKind for Complaints {
    const ROUTE: &'static str = "/v1/complaints";
    fn topic(config: &IngestConfig) -> &str {
        &config.complaints_topic
    }
    type Item = ComplaintItem;
    type Record = ComplaintRecord;
    fn parse(bytes: &[u8], _: i64) -> Result<Vec<ComplaintItem>, Problem> {
        parse_json::<ComplaintBatch>(bytes).map(|b| b.complaints)
    }
    fn check(
        at: &CheckAt<'_>,
        items: &mut [ComplaintItem],
    ) -> Vec<Result<ComplaintRecord, Rejection>> {
        let opts = VerifyOptions {
            now: at.now_ms / 1000,
            clock_skew_secs: at.state.inner.config.clock_skew_secs,
        };
        let config = &at.state.inner.config;
        let how = Checking {
            pool: at.pool,
            chunk: (config.signature_check == SignatureCheck::Batch)
                .then_some(config.verify_batch as usize),
        };
        let mut results = check_batch(items, at.provider, at.registry, &opts, at.now_ms, how);
        if let Some(policies) = at.state.policies() {
            for r in &mut results {
                let verdict = r
                    .as_ref()
                    .map_or(Ok(()), |rec| check_policy_violation(rec, &policies));
                if let Err(e) = verdict {
                    *r = Err(e);
                }
            }
        }
        results
    }
    fn write_key(r: &ComplaintRecord, out: &mut Vec<u8>) {
        write_sender_key(&r.esp, &r.sender, out)
    }
    fn into_id(r: ComplaintRecord) -> Option<String> {
        Some(r.jti)
    }
    fn write_payload(r: &ComplaintRecord, out: &mut Vec<u8>) {
        r.write_json(out)
    }
}

/// `POST /v1/deliveries`: a JSON batch of delivered counts.
pub(crate) struct Deliveries;
impl BatchKind for Deliveries {
    const ROUTE: &'static str = "/v1/deliveries";
    fn topic(config: &IngestConfig) -> &str {
        &config.deliveries_topic
    }
    type Item = DeliveryItem;
    type Record = DeliveryRecord;
    fn parse(bytes: &[u8], _: i64) -> Result<Vec<DeliveryItem>, Problem> {
        parse_json::<DeliveryBatch>(bytes).map(|b| b.deliveries)
    }
    fn check(
        at: &CheckAt<'_>,
        items: &mut [DeliveryItem],
    ) -> Vec<Result<DeliveryRecord, Rejection>> {
        items
            .iter()
            .map(|i| check_delivery(i, at.provider, at.registry, at.now_ms))
            .collect()
    }
    fn write_key(r: &DeliveryRecord, out: &mut Vec<u8>) {
        write_sender_key(&r.esp, &r.sender, out)
    }
    fn into_id(_: DeliveryRecord) -> Option<String> {
        None
    }
}

/// One RFC 5965 report per request: the complaint it makes, or why none.
pub(crate) struct ArfReports;
impl BatchKind for ArfReports {
    const ROUTE: &'static str = "/v1/arf";
    fn topic(config: &IngestConfig) -> &str {
        &config.complaints_topic
    }
    type Item = Result<ComplaintItem, Rejection>;
    type Record = ComplaintRecord;
    fn parse(bytes: &[u8], now_ms: i64) -> Result<Vec<Self::Item>, Problem> {
        let report = arf::parse(bytes)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()))?;
        Ok(vec![arf::to_complaint(&report, now_ms)])
    }
    fn check(
        at: &CheckAt<'_>,
        items: &mut [Self::Item],
    ) -> Vec<Result<ComplaintRecord, Rejection>> {
        let mut valid: Vec<ComplaintItem> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().cloned())
            .collect();
        let mut checked = Complaints::check(at, &mut valid).into_iter();
        items
            .iter()
            .map(|i| match i {
                Ok(_) => checked.next().expect("one verdict per valid item"),
                Err(r) => Err(r.clone()),
            })
            .collect()
    }
    fn write_key(r: &ComplaintRecord, out: &mut Vec<u8>) {
        Complaints::write_key(r, out)
    }
    fn into_id(r: ComplaintRecord) -> Option<String> {
        Complaints::into_id(r)
    }
    fn write_payload(r: &ComplaintRecord, out: &mut Vec<u8>) {
        Complaints::write_payload(r, out)
    }
}

/// The body as `T`; on failure a 400 naming where in the body it broke.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Tracking the path costs on every field, so it is only done for the
    // error: a body that parses is parsed once, plainly.
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            format!("invalid JSON at {path}: {inner}"),
        )
        .at(JsonLocation {
            path,
            line: inner.line(),
            column: inner.column(),
        })
    })
}
