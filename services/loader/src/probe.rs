//! What the loader tells operators (`/readyz`, `/metrics`): ready while the
//! consume loop runs and ClickHouse takes its inserts.

use std::sync::atomic::Ordering;

use ricochet_http::ops::{Check, Probe};

use crate::metrics::Metrics;
use crate::pipeline::Health;

/// The loader's metrics and health, as its HTTP endpoints read them.
#[derive(Clone)]
pub struct LoaderProbe {
    /// The loader's metrics.
    pub metrics: Metrics,
    /// Flags the consume loop keeps.
    pub health: Health,
}

impl Probe for LoaderProbe {
    fn checks(&self) -> Vec<Check> {
        vec![
            Check::new("running", self.health.running.load(Ordering::Relaxed)),
            Check::new(
                "clickhouse",
                self.health.clickhouse_ok.load(Ordering::Relaxed),
            ),
        ]
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}
