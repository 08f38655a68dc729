//! Prometheus metrics of the ingest, registered once into the server's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Handles to every ingest metric; cheap to clone (each is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    pub messages_received: Counter,
    pub readings_stored: Family<KindLabel, Counter>,
    pub readings_duplicate: Counter,
    pub readings_rejected: Family<ReasonLabel, Counter>,
    pub batch_messages: Histogram,
    pub batch_readings: Histogram,
    pub commit_seconds: Histogram,
    /// Time from a message's arrival to the commit of its batch.
    pub lag_seconds: Histogram,
    pub storage_errors: Counter,
    pub broker_connected: Gauge,
    /// Device acks sent at QoS 0 because the broker had not yet confirmed the earlier ones.
    pub device_acks_at_most_once: Counter,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> IngestMetrics {
        let metrics = IngestMetrics {
            messages_received: Counter::default(),
            readings_stored: Family::default(),
            readings_duplicate: Counter::default(),
            readings_rejected: Family::default(),
            batch_messages: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            batch_readings: Histogram::new(exponential_buckets(1.0, 2.0, 18)),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            lag_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            storage_errors: Counter::default(),
            broker_connected: Gauge::default(),
            device_acks_at_most_once: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("chronicle_ingest");
        chronicle_domain::register_metrics!(r, metrics, {
            messages_received: "Messages received from every front door",
            readings_stored: "Readings written to the database",
            readings_duplicate: "Readings already held, not written again",
            readings_rejected: "Readings refused, by reason",
            batch_messages: "Messages per committed batch",
            batch_readings: "Readings per committed batch",
            commit_seconds: "Time to write and commit one batch",
            lag_seconds: "Time from a message's arrival to its batch's commit",
            storage_errors: "Failed batch writes (each is retried)",
            broker_connected: "1 while the MQTT front door is connected to its broker",
            device_acks_at_most_once: "Device acks sent at QoS 0 because the broker had not yet confirmed a window of earlier ones",
        });
        metrics
    }

    /// Counts the readings `rejection` refused, under its reason.
    pub fn count_rejected(&self, rejection: &chronicle_domain::Rejection) {
        self.readings_rejected
            .get_or_create(&ReasonLabel {
                reason: rejection.reason.code(),
            })
            .inc_by(rejection.readings_covered as u64);
    }
}
