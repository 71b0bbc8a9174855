//! Scoring's Prometheus metrics.

use prometheus::{Histogram, IntCounterVec, IntGaugeVec, Registry};

use crate::dispatch::Outbox;

/// What became of the rows an outbox sent: the `outcome` label of
/// `ricochet_scoring_dispatched_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// Produced to Kafka and acknowledged.
    Kafka,
    /// Accepted by the ESP's webhook.
    WebhookDelivered,
    /// Refused by the ESP's webhook, or unreachable (retried later).
    WebhookFailed,
}

impl Dispatched {
    /// Every outcome.
    pub const ALL: [Dispatched; 3] = [
        Dispatched::Kafka,
        Dispatched::WebhookDelivered,
        Dispatched::WebhookFailed,
    ];

    /// The label value: `kafka`, `webhook-delivered` or `webhook-failed`,
    /// with `feed-` in front for the complaint feed.
    pub fn label(self, outbox: Outbox) -> &'static str {
        match (outbox, self) {
            (Outbox::Penalties, Dispatched::Kafka) => "kafka",
            (Outbox::Penalties, Dispatched::WebhookDelivered) => "webhook-delivered",
            (Outbox::Penalties, Dispatched::WebhookFailed) => "webhook-failed",
            (Outbox::Complaints, Dispatched::Kafka) => "feed-kafka",
            (Outbox::Complaints, Dispatched::WebhookDelivered) => "feed-webhook-delivered",
            (Outbox::Complaints, Dispatched::WebhookFailed) => "feed-webhook-failed",
        }
    }
}

/// What a feed pass did with a complaint: the `outcome` label of
/// `ricochet_feed_complaints_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Appended to its ESP's feed.
    Fed,
    /// A copy of a token already fed, skipped.
    Duplicate,
}

impl FeedOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedOutcome::Fed => "fed",
            FeedOutcome::Duplicate => "duplicate",
        }
    }
}

/// Every metric scoring exports at `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Duration of one scoring run.
    pub run_seconds: Histogram,
    /// Senders per tier in force after the last run.
    pub senders: IntGaugeVec,
    /// ESPs, campaigns and domains per level and tier in force after the last run.
    pub groups: IntGaugeVec,
    /// Tier changes written, by new tier.
    pub changes: IntCounterVec,
    /// Rows of the penalty log and the complaint feed sent, by [`Dispatched`] outcome.
    pub dispatched: IntCounterVec,
    /// Unix time of the last successful run (staleness = now - this).
    pub last_success: prometheus::IntGauge,
    /// Campaigns flagged for a complaint burst in the last hour, at the last run.
    pub bursts: prometheus::IntGauge,
    /// Keys on the provider list (`throttle` or above, every level).
    pub listed: prometheus::IntGauge,
    /// Complaints a feed pass read, by [`FeedOutcome`].
    pub feed: IntCounterVec,
    /// Seconds from a complaint's load to its feed entry, at the last pass
    /// that read any (0 when the feed is idle).
    pub feed_lag_seconds: prometheus::Gauge,
    /// Unix time of the last successful feed pass.
    pub feed_last_success: prometheus::IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics. Every label value a series can
    /// take is registered here at zero, so dashboards and alerts see zeros,
    /// not gaps.
    pub fn new() -> Self {
        Self::build(Registry::new())
            .expect("scoring's metric names are unique and valid")
            .with_zeros()
    }

    /// Creates the metrics in `r`.
    fn build(r: Registry) -> prometheus::Result<Metrics> {
        use prometheus::{
            register_gauge_with_registry as gauge, register_histogram_with_registry as histogram,
            register_int_counter_vec_with_registry as counter_vec,
            register_int_gauge_vec_with_registry as gauge_vec,
            register_int_gauge_with_registry as int_gauge,
        };
        let buckets = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        Ok(Metrics {
            run_seconds: histogram!("ricochet_scoring_run_seconds", "Duration of one scoring run", buckets, r)?,
            senders: gauge_vec!("ricochet_scoring_senders", "Senders per tier in force", &["tier"], r)?,
            groups: gauge_vec!(
                "ricochet_scoring_groups",
                "ESPs, campaigns and From domains (level esp, campaign, domain) per tier in force",
                &["level", "tier"],
                r
            )?,
            changes: counter_vec!("ricochet_scoring_tier_changes_total", "Tier changes written, by new tier", &["to_tier"], r)?,
            dispatched: counter_vec!(
                "ricochet_scoring_dispatched_total",
                "Penalty log and complaint feed rows sent to Kafka and webhooks, by outcome",
                &["outcome"],
                r
            )?,
            last_success: int_gauge!("ricochet_scoring_last_success_timestamp_seconds", "Unix time of the last successful scoring run", r)?,
            bursts: int_gauge!("ricochet_scoring_campaign_bursts", "Campaigns with a complaint burst in the last hour", r)?,
            listed: int_gauge!(
                "ricochet_provider_listed_keys",
                "Keys on the list providers poll: ESPs, senders, campaigns and domains at throttle or above",
                r
            )?,
            feed: counter_vec!(
                "ricochet_feed_complaints_total",
                "Complaint feed: entries appended (fed) and copies of fed tokens skipped (duplicate)",
                &["outcome"],
                r
            )?,
            feed_lag_seconds: gauge!(
                "ricochet_feed_lag_seconds",
                "Seconds from load to feed entry of the newest complaint the last busy pass read",
                r
            )?,
            feed_last_success: int_gauge!(
                "ricochet_feed_last_success_timestamp_seconds",
                "Unix time of the last successful complaint feed pass",
                r
            )?,
            registry: r,
        })
    }

    /// Registers every label value the counters can take, at zero.
    fn with_zeros(self) -> Self {
        for t in crate::Tier::ALL {
            self.changes.with_label_values(&[t.as_str()]);
        }
        for outbox in [Outbox::Penalties, Outbox::Complaints] {
            for d in Dispatched::ALL {
                self.dispatched.with_label_values(&[d.label(outbox)]);
            }
        }
        for outcome in [FeedOutcome::Fed, FeedOutcome::Duplicate] {
            self.feed.with_label_values(&[outcome.as_str()]);
        }
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_series_exists_from_the_start() {
        let text = Metrics::new().render();
        for label in [
            "kafka",
            "webhook-delivered",
            "webhook-failed",
            "feed-kafka",
            "feed-webhook-delivered",
            "feed-webhook-failed",
        ] {
            let series = format!("ricochet_scoring_dispatched_total{{outcome=\"{label}\"}} 0");
            assert!(text.contains(&series), "{series} missing");
        }
        assert!(text.contains("ricochet_feed_complaints_total{outcome=\"duplicate\"} 0"));
    }
}
