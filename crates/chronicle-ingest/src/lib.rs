//! Chronicle's ingest.
//!
//! - [`pipeline`]: decode → validate → normalize → deduplicate → store for a batch of raw
//!   messages, whatever transport brought them. Every message gets a [`MessageOutcome`].
//! - [`batcher`]: gathers messages from any number of front doors into batches (size and
//!   linger), commits each batch, retries while the database is away, and only then answers
//!   each message.
//! - [`mqtt`]: the MQTT front door. It acknowledges a message to the broker only after the
//!   batch holding it committed, in receive order, and publishes the outcome to the device.
//! - [`metrics`]: Prometheus counters and histograms of all of the above.
//! - [`registry_cache`]: the devices and gateway relays the ingest has read, held until the
//!   registry announces a change to them.
//!
//! Invariant: nothing here writes SQL (the storage crate does) and the pipeline knows nothing
//! of MQTT: a new front door is a thin adapter that sends [`batcher::IngestRequest`]s.

pub mod batcher;
pub mod metrics;
pub mod mqtt;
pub mod pipeline;
pub mod registry_cache;

pub use batcher::{BatchSettings, IngestHandle, IngestRequest};
pub use metrics::IngestMetrics;
pub use pipeline::{BrokerAuthorization, IncomingMessage, MessageOutcome, Pipeline};
