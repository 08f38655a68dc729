//! Prometheus metrics of the alert engine, registered once into the server's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Handles to every alert metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct AlertMetrics {
    /// Patients evaluated (after a commit, or by the scheduler).
    pub evaluations: Counter,
    /// How long one patient's evaluation took, lock wait included.
    pub evaluation_seconds: Histogram,
    /// Evaluations that failed (the work stays queued).
    pub evaluation_failures: Counter,
    /// Alert events written, by kind (`opened`, `retriggered`, …).
    pub events: Family<KindLabel, Counter>,
    /// Webhook attempts by outcome (`delivered`, `failed_attempt`, `withheld`).
    pub webhook_attempts: Family<OutcomeLabel, Counter>,
    /// Attempts to deliver to users' own channels, by outcome (`delivered`, `failed_attempt`).
    pub notification_attempts: Family<OutcomeLabel, Counter>,
}

impl AlertMetrics {
    pub fn register(registry: &mut Registry) -> AlertMetrics {
        let metrics = AlertMetrics {
            evaluations: Counter::default(),
            evaluation_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            evaluation_failures: Counter::default(),
            events: Family::default(),
            webhook_attempts: Family::default(),
            notification_attempts: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("chronicle_alerts");
        chronicle_domain::register_metrics!(r, metrics, {
            evaluations: "Patients evaluated",
            evaluation_seconds: "Time to evaluate one patient, waiting for its lock included",
            evaluation_failures: "Evaluations that failed; their work stays queued",
            events: "Alert events written, by kind",
            webhook_attempts: "Webhook delivery attempts, by outcome",
            notification_attempts: "Attempts to deliver to users' own channels, by outcome",
        });
        metrics
    }
}
