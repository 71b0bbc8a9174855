//! The loader's Prometheus metrics.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Registry};

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
    /// Creates and registers the metrics; every dead-letter reason's series
    /// exists from the start, so dashboards and alerts see zeros, not gaps.
    pub fn new() -> Self {
        let m =
            Self::build(Registry::new()).expect("the loader's metric names are unique and valid");
        for reason in crate::decode::POISON_REASONS {
            m.dead_letters.with_label_values(&[reason]);
        }
        m
    }

    /// Creates the metrics in `r`.
    fn build(r: Registry) -> prometheus::Result<Metrics> {
        use prometheus::{
            register_histogram_vec_with_registry as histogram_vec,
            register_histogram_with_registry as histogram,
            register_int_counter_vec_with_registry as counter_vec,
            register_int_counter_with_registry as counter,
            register_int_gauge_vec_with_registry as gauge_vec,
        };
        let rows = vec![
            1.0, 10.0, 100.0, 1_000.0, 10_000.0, 50_000.0, 100_000.0, 500_000.0,
        ];
        let seconds = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Ok(Metrics {
            consumed: counter_vec!(
                "ricochet_loader_records_consumed_total",
                "Records read from Kafka",
                &["topic"],
                r
            )?,
            inserted: counter_vec!(
                "ricochet_loader_rows_inserted_total",
                "Rows acknowledged by ClickHouse",
                &["table"],
                r
            )?,
            batch_rows: histogram!(
                "ricochet_loader_batch_rows",
                "Rows per flushed batch",
                rows,
                r
            )?,
            insert_seconds: histogram_vec!(
                "ricochet_loader_insert_seconds",
                "Time of one acknowledged insert",
                &["table"],
                seconds,
                r
            )?,
            dead_letters: counter_vec!(
                "ricochet_loader_dead_letters_total",
                "Records sent to the dead-letter topic",
                &["reason"],
                r
            )?,
            clickhouse_errors: counter!(
                "ricochet_loader_clickhouse_errors_total",
                "Failed ClickHouse inserts (retried)",
                r
            )?,
            lag: gauge_vec!(
                "ricochet_loader_consumer_lag",
                "Records behind the end of the partition",
                &["topic", "partition"],
                r
            )?,
            commit_errors: counter!(
                "ricochet_loader_commit_errors_total",
                "Failed offset commits",
                r
            )?,
            consumer_restarts: counter!(
                "ricochet_loader_consumer_restarts_total",
                "Kafka consumers replaced after being stuck joining the group",
                r
            )?,
            registry: r,
        })
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
