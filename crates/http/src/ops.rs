//! The endpoints operators and orchestrators use, served the same way by
//! every service: `/healthz` (the process answers), `/readyz` (200 or 503,
//! with a JSON body naming each check) and `/metrics` (Prometheus text).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// What a service says about itself.
pub trait Probe: Clone + Send + Sync + 'static {
    /// The readiness checks; the service is ready when all pass.
    fn checks(&self) -> Vec<Check>;
    /// The service's metrics, in the text exposition format.
    fn metrics(&self) -> String;
}

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name in the `/readyz` body (`snake_case`).
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// What an operator should know about it, if anything.
    pub detail: Option<String>,
}

impl Check {
    /// A check without detail.
    pub fn new(name: &'static str, ok: bool) -> Check {
        Check {
            name,
            ok,
            detail: None,
        }
    }

    /// The same check with a detail.
    pub fn with_detail(self, detail: impl Into<String>) -> Check {
        Check {
            detail: Some(detail.into()),
            ..self
        }
    }
}

/// `/healthz`, `/readyz` and `/metrics` of `probe`, to merge into a
/// service's router.
pub fn routes<P: Probe>(probe: P) -> Router {
    let (ready, metrics) = (probe.clone(), probe);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move { readyz(&ready.checks()) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        ricochet_telemetry::metrics::CONTENT_TYPE,
                    )],
                    metrics.metrics(),
                )
            }),
        )
}

/// `{"ready": …, "checks": {name: ok}, "details": {name: detail}}`, 200 when
/// every check passes, else 503.
fn readyz(checks: &[Check]) -> Response {
    let ready = checks.iter().all(|c| c.ok);
    let mut oks = Map::new();
    let mut details = Map::new();
    for c in checks {
        oks.insert(c.name.into(), Value::Bool(c.ok));
        if let Some(d) = &c.detail {
            details.insert(c.name.into(), Value::String(d.clone()));
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"ready": ready, "checks": oks, "details": details});
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn ready_only_when_every_check_passes_and_each_is_named() {
        let ok = readyz(&[Check::new("kafka", true)]);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            body(ok).await,
            json!({"ready": true, "checks": {"kafka": true}, "details": {}})
        );
        let not = readyz(&[
            Check::new("kafka", true),
            Check::new("fresh", false).with_detail("last run 40 s ago"),
        ]);
        assert_eq!(not.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body(not).await,
            json!({"ready": false, "checks": {"kafka": true, "fresh": false},
                   "details": {"fresh": "last run 40 s ago"}})
        );
    }
}
