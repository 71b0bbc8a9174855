//! The loader's Prometheus metrics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Every metric the loader exports at `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Records read from Kafka, by topic.
    pub consumed: IntCounterVec,
    /// Rows ClickHouse acknowledged, by table.
    pub inserted: IntCounterVec,
    /// Rows per flushed batch.
    pub batch_rows: Histogram,
    /// Time of one acknowledged insert, by table.
    pub insert_seconds: HistogramVec,
    /// Records sent to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Failed ClickHouse inserts (each retried).
    pub clickhouse_errors: IntCounter,
    /// Consumer lag per partition (from librdkafka statistics).
    pub lag: IntGaugeVec,
    /// Offset commits that failed (the records will be read again and counted once).
    pub commit_errors: IntCounter,
    /// Consumers replaced because they were stuck joining the group.
    pub consumer_restarts: IntCounter,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
            registry.register(Box::new(c.clone())).unwrap();
            c
        };
        let consumed = counter_vec(
            "ricochet_loader_records_consumed_total",
            "Records read from Kafka",
            &["topic"],
        );
        let inserted = counter_vec(
            "ricochet_loader_rows_inserted_total",
            "Rows acknowledged by ClickHouse",
            &["table"],
        );
        let dead_letters = counter_vec(
            "ricochet_loader_dead_letters_total",
            "Records sent to the dead-letter topic",
            &["reason"],
        );
        // Series exist from the start, so dashboards and alerts see zeros, not gaps.
        for reason in crate::decode::POISON_REASONS {
            dead_letters.with_label_values(&[reason]);
        }
        let batch_rows = Histogram::with_opts(
            HistogramOpts::new("ricochet_loader_batch_rows", "Rows per flushed batch").buckets(
                vec![
                    1.0, 10.0, 100.0, 1_000.0, 10_000.0, 50_000.0, 100_000.0, 500_000.0,
                ],
            ),
        )
        .unwrap();
        let insert_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ricochet_loader_insert_seconds",
                "Time of one acknowledged insert",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["table"],
        )
        .unwrap();
        let clickhouse_errors = IntCounter::new(
            "ricochet_loader_clickhouse_errors_total",
            "Failed ClickHouse inserts (retried)",
        )
        .unwrap();
        let commit_errors = IntCounter::new(
            "ricochet_loader_commit_errors_total",
            "Failed offset commits",
        )
        .unwrap();
        let consumer_restarts = IntCounter::new(
            "ricochet_loader_consumer_restarts_total",
            "Kafka consumers replaced after being stuck joining the group",
        )
        .unwrap();
        let lag = IntGaugeVec::new(
            Opts::new(
                "ricochet_loader_consumer_lag",
                "Records behind the end of the partition",
            ),
            &["topic", "partition"],
        )
        .unwrap();
        registry.register(Box::new(batch_rows.clone())).unwrap();
        registry.register(Box::new(insert_seconds.clone())).unwrap();
        registry
            .register(Box::new(clickhouse_errors.clone()))
            .unwrap();
        registry.register(Box::new(commit_errors.clone())).unwrap();
        registry.register(Box::new(lag.clone())).unwrap();
        registry
            .register(Box::new(consumer_restarts.clone()))
            .unwrap();
        Metrics {
            registry,
            consumed,
            inserted,
            batch_rows,
            insert_seconds,
            dead_letters,
            clickhouse_errors,
            lag,
            commit_errors,
            consumer_restarts,
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
