//! Chronicle's alert engine: what runs in every `chronicle serve` process to turn stored
//! readings into alerts and deliver them.
//!
//! - [`engine`]: the `alerts` follow-up consumer. After each ingest commit it evaluates the
//!   touched patients **from stored data** (`chronicle_domain::alerts`), one patient at a
//!   time under a database lock shared by every server, so the result does not depend on
//!   message order or on which server received which reading.
//! - [`windows`]: the patients' recent readings kept between evaluations, so each reads only
//!   what was newly stored (and gives what reading everything stored would give).
//! - [`scheduler`]: the rules that depend on the clock: `no_data`, and automatic resolution
//!   of alerts whose condition has been clear long enough.
//! - [`hub`]: LISTENs for committed alert events and broadcasts them to the live streams of
//!   this process (the HTTP crate's SSE endpoint checks the gate per event and user).
//! - [`webhooks`]: delivers events to organizations' webhooks, signed with HMAC-SHA256,
//!   retried with backoff, every attempt in the delivery log.
//! - [`notifications`]: delivers alarms to the channels each user chose (Web Push, e-mail,
//!   a personal signed webhook), through the gate, every delivery in the user's log.
//! - [`escalation`]: queues the later steps of care teams' escalation chains and the reminders
//!   for urgent alerts nobody has acknowledged.
//! - [`dispatch`]: the delivery loop both share (leases, one delivery per destination at a
//!   time, never one receiver holding up another).
//!
//! Everything lives in the database (queue, alerts, events, deliveries), so a restart
//! resumes where the last process stopped, and several processes share the work.

pub mod destinations;
pub mod dispatch;
pub mod engine;
pub mod escalation;
pub mod hub;
pub mod mail;
pub mod metrics;
pub mod notifications;
pub mod scheduler;
pub mod webhooks;
pub mod windows;

pub use engine::{CONSUMER, Scope, evaluate_patients};
pub use hub::AlertHub;
pub use metrics::AlertMetrics;
pub use notifications::NotificationSettings;
pub use webhooks::WebhookSettings;
pub use windows::ReadingWindows;

use chronicle_storage::{IngestBacklog, Store, UrgentPatients};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Patients whose recent readings the engine keeps by default. An evaluation then reads from
/// the database only the readings stored since the last one instead of the rules' whole
/// lookback (on `bench ingest`, rows read per stored reading fall from about 3.7 to 1.2).
/// Held compact, a patient costs about 0.9 KB with a 5-minute CGM (3 h 15 min of readings),
/// about 3.5 KB with a 1-minute one: a million patients of a fleet fit in about 0.9 GB, a
/// clinic's few thousand in a few MiB (memory grows only with the patients evaluated).
pub const DEFAULT_WINDOW_PATIENTS: usize = 1_000_000;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often to look for follow-up work queued by other servers (work this process
    /// queues wakes the engine at once).
    pub poll_interval: Duration,
    /// How often to run the time-based rules (`no_data`, auto-resolution).
    pub scheduler_interval: Duration,
    pub webhooks: WebhookSettings,
    /// Users' own channels (Web Push, e-mail, personal webhooks).
    pub notifications: NotificationSettings,
    /// Run the engine and the scheduler here (`false`: another server on the same database
    /// does; this one still streams the events and delivers webhooks).
    pub evaluate: bool,
    /// Patients whose recent readings the engine keeps between evaluations (0: none, every
    /// evaluation reads the rules' whole lookback from the database).
    pub window_patients: usize,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            poll_interval: Duration::from_secs(1),
            scheduler_interval: Duration::from_secs(5),
            webhooks: WebhookSettings::default(),
            notifications: NotificationSettings::default(),
            evaluate: true,
            window_patients: DEFAULT_WINDOW_PATIENTS,
        }
    }
}

/// The engine's running tasks and the hub the HTTP API streams from.
pub struct AlertServices {
    pub hub: AlertHub,
    tasks: Vec<JoinHandle<()>>,
}

impl AlertServices {
    /// Starts the hub, the webhook dispatcher and the notification worker, and (with `settings.evaluate`) the
    /// consumer, its lane for urgent readings and the scheduler. `followups` is the ingest
    /// pipeline's signal that it queued work (`Pipeline::followups_enqueued`), `backlog`
    /// whether it works through a backlog (`Pipeline::ingest_backlog`), `urgent` where
    /// it announces patients of readings that may raise an urgent alarm
    /// (`Pipeline::with_urgent_lane`).
    pub fn start(
        store: Store,
        followups: watch::Receiver<u64>,
        backlog: IngestBacklog,
        urgent: UrgentPatients,
        settings: AlertSettings,
        metrics: AlertMetrics,
        shutdown: CancellationToken,
    ) -> AlertServices {
        let (hub, hub_task) = hub::spawn(store.clone(), shutdown.clone());
        let mut tasks = vec![hub_task];
        if settings.evaluate {
            let windows = std::sync::Arc::new(ReadingWindows::new(settings.window_patients));
            if settings.window_patients > 0 {
                tasks.push(tokio::spawn(windows::forget_erased(
                    store.clone(),
                    windows.clone(),
                    shutdown.clone(),
                )));
            }
            tasks.push(tokio::spawn(engine::run_urgent(
                store.clone(),
                windows.clone(),
                urgent,
                metrics.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(engine::run(
                store.clone(),
                windows,
                followups,
                backlog,
                settings.poll_interval,
                metrics.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(escalation::run(
                store.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(scheduler::run(
                store.clone(),
                settings.scheduler_interval,
                metrics.clone(),
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(webhooks::run(
            store.clone(),
            hub.clone(),
            settings.webhooks,
            metrics.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(notifications::run(
            store,
            hub.clone(),
            settings.notifications,
            metrics,
            shutdown,
        )));
        AlertServices { hub, tasks }
    }

    /// Waits for every task to stop (after the shutdown token was cancelled).
    pub async fn join(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "alert task failed");
            }
        }
    }
}
