//! Ingest's Prometheus metrics.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric ingest exports at `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and HTTP status.
    pub requests: IntCounterVec,
    /// Items by route, verdict and reason (`accepted` items have reason `none`).
    pub items: IntCounterVec,
    /// Time to check one request's items (signature verification included), by route.
    pub verify_seconds: HistogramVec,
    /// Time from handing a batch to Kafka until every record is acknowledged, by topic.
    pub produce_seconds: HistogramVec,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// 1 if the broker answered the last metadata probe, else 0.
    pub kafka_up: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "ricochet_ingest_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .unwrap();
        let items = IntCounterVec::new(
            Opts::new(
                "ricochet_ingest_items_total",
                "Submitted items by route, verdict and reason",
            ),
            &["route", "verdict", "reason"],
        )
        .unwrap();
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let verify_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ricochet_ingest_verify_seconds",
                "Time to check one request's items",
            )
            .buckets(buckets.clone()),
            &["route"],
        )
        .unwrap();
        let produce_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ricochet_ingest_kafka_produce_seconds",
                "Time until Kafka acknowledged every record of a request",
            )
            .buckets(buckets),
            &["topic"],
        )
        .unwrap();
        let in_flight = IntGauge::new(
            "ricochet_ingest_in_flight_requests",
            "Requests being handled",
        )
        .unwrap();
        let kafka_up = IntGauge::new(
            "ricochet_ingest_kafka_up",
            "1 if the broker answered the last probe",
        )
        .unwrap();
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(items.clone()),
            Box::new(verify_seconds.clone()),
            Box::new(produce_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(kafka_up.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            requests,
            items,
            verify_seconds,
            produce_seconds,
            in_flight,
            kafka_up,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        ricochet_telemetry::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
