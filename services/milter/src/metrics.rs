//! The milter's Prometheus metrics; every label value exists from the
//! start, so dashboards and alerts see zeros, not gaps.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use ricochet_policy::Action;

/// Why a message was or was not signed (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutcome {
    /// A token was added.
    Signed,
    /// No (or no valid) `Message-Nature:`.
    NoNature,
    /// No sender id for the login or envelope sender.
    NoSender,
    /// The recipient's policy refuses the declared nature.
    PolicyRefused,
    /// Minting failed (a claim the format refuses, e.g. a bad campaign id).
    Failed,
}

impl SignOutcome {
    /// Every outcome.
    pub const ALL: [SignOutcome; 5] = [
        SignOutcome::Signed,
        SignOutcome::NoNature,
        SignOutcome::NoSender,
        SignOutcome::PolicyRefused,
        SignOutcome::Failed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SignOutcome::Signed => "signed",
            SignOutcome::NoNature => "no-nature",
            SignOutcome::NoSender => "no-sender",
            SignOutcome::PolicyRefused => "policy-refused",
            SignOutcome::Failed => "failed",
        }
    }
}

/// The milter's metrics.
#[derive(Clone)]
pub struct MilterMetrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    signed: IntCounterVec,
    checked: IntCounterVec,
    policy: IntCounterVec,
    /// Second and later `RCPT TO` answered 452 in sign mode.
    pub extra_recipients: IntCounter,
    /// Send log lines that could not be written.
    pub send_log_failures: IntCounter,
    /// MTA connections accepted.
    pub connections: IntCounter,
    /// MTA connections open now.
    pub open_connections: IntGauge,
    /// Connections closed on malformed milter traffic or a timeout.
    pub connection_errors: IntCounter,
}

impl MilterMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let m = Self::build(Registry::new()).expect("the milter's metric names are unique");
        for o in SignOutcome::ALL {
            m.signed.with_label_values(&[o.as_str()]);
        }
        for v in ["valid", "invalid", "absent"] {
            m.checked.with_label_values(&[v]);
        }
        for a in [Action::Header, Action::Quarantine, Action::Reject] {
            m.policy.with_label_values(&[action_label(a)]);
        }
        m
    }

    fn build(r: Registry) -> prometheus::Result<Self> {
        use prometheus::{
            register_int_counter_vec_with_registry as counter_vec,
            register_int_counter_with_registry as counter,
            register_int_gauge_with_registry as gauge,
        };
        Ok(MilterMetrics {
            signed: counter_vec!(
                "ricochet_milter_messages_signed_total",
                "Messages seen in sign mode, by outcome",
                &["outcome"],
                r
            )?,
            checked: counter_vec!(
                "ricochet_milter_messages_checked_total",
                "Messages seen in check mode, by token verdict",
                &["verdict"],
                r
            )?,
            policy: counter_vec!(
                "ricochet_milter_policy_refused_total",
                "Messages a recipient policy refused, by action taken",
                &["action"],
                r
            )?,
            extra_recipients: counter!(
                "ricochet_milter_extra_recipients_total",
                "RCPT TO beyond the first answered 452 4.5.3 in sign mode",
                r
            )?,
            send_log_failures: counter!(
                "ricochet_milter_send_log_failures_total",
                "Send log lines not written (the message was still signed)",
                r
            )?,
            connections: counter!(
                "ricochet_milter_connections_total",
                "MTA connections accepted",
                r
            )?,
            open_connections: gauge!(
                "ricochet_milter_connections_open",
                "MTA connections open now",
                r
            )?,
            connection_errors: counter!(
                "ricochet_milter_connection_errors_total",
                "MTA connections closed on malformed milter traffic or a timeout",
                r
            )?,
            registry: r,
        })
    }

    /// Counts a sign-mode message.
    pub fn signed(&self, outcome: SignOutcome) {
        self.signed.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Counts a check-mode message.
    pub fn checked(&self, verdict: &str) {
        self.checked.with_label_values(&[verdict]).inc();
    }

    /// Counts a policy refusal.
    pub fn policy_refused(&self, action: Action) {
        self.policy.with_label_values(&[action_label(action)]).inc();
    }
}

impl Default for MilterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Header => "header",
        Action::Quarantine => "quarantine",
        Action::Reject => "reject",
    }
}
