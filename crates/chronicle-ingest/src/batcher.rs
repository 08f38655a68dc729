//! Gathers messages from the front doors into batches, commits each batch through the
//! [`Pipeline`], and answers each message only after its batch committed.

use crate::pipeline::{IncomingMessage, MessageOutcome, Pipeline};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How batches are formed.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// A batch is written once it holds this many messages…
    pub max_messages: usize,
    /// …or this many payload bytes…
    pub max_bytes: usize,
    /// …or, while every commit slot is busy, when it has gathered this long (with a slot free
    /// a batch is written at once).
    pub linger: Duration,
    /// Messages that may wait for the batcher; a full queue slows the front doors down
    /// (back-pressure towards the broker) instead of growing memory.
    pub queue_capacity: usize,
    /// Batches committing at once: while one batch waits for its commit's WAL flush the next
    /// one is already on its way (messages wait in a window until acknowledged); more than a
    /// few only adds contention.
    pub concurrent_commits: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_messages: 1000,
            max_bytes: 1024 * 1024,
            linger: Duration::from_millis(20),
            queue_capacity: 10_000,
            concurrent_commits: 2,
        }
    }
}

/// One message handed to the ingest, with where to send its outcome.
#[derive(Debug)]
pub struct IngestRequest {
    pub message: IncomingMessage,
    /// Answered once the batch holding the message committed; dropped unanswered if the
    /// ingest shut down before it could commit (the sender must then not acknowledge it).
    pub reply: oneshot::Sender<MessageOutcome>,
}

/// The ingest no longer takes messages (it is shutting down).
#[derive(Debug, Error)]
#[error("the ingest is shutting down")]
pub struct IngestClosed;

/// What a front door holds to submit messages. Cloneable; the batcher stops once every handle
/// is dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct IngestHandle {
    tx: mpsc::Sender<IngestRequest>,
    pipeline: Pipeline,
}

impl IngestHandle {
    /// Queues a message; the receiver yields its outcome after the commit.
    pub async fn submit(
        &self,
        message: IncomingMessage,
    ) -> Result<oneshot::Receiver<MessageOutcome>, IngestClosed> {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send(IngestRequest { message, reply })
            .await
            .map_err(|_| IngestClosed)?;
        self.pipeline.metrics().messages_received.inc();
        Ok(outcome)
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Starts the batcher task. `abandon` is cancelled when shutdown can wait no longer: a batch
/// still failing then is dropped unanswered (so never acknowledged, and redelivered later).
pub fn spawn_batcher(
    pipeline: Pipeline,
    settings: BatchSettings,
    abandon: CancellationToken,
) -> (IngestHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
    let handle = IngestHandle {
        tx,
        pipeline: pipeline.clone(),
    };
    let task = tokio::spawn(run(pipeline, settings, rx, abandon));
    (handle, task)
}

async fn run(
    pipeline: Pipeline,
    settings: BatchSettings,
    mut rx: mpsc::Receiver<IngestRequest>,
    abandon: CancellationToken,
) {
    let mut committing = JoinSet::new();
    let concurrent = settings.concurrent_commits.max(1);
    // Numbers batches for the logs: a message's lines carry its batch's number.
    let mut batches: u64 = 0;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.message.payload.len();
        let mut batch: Vec<IngestRequest> = Vec::with_capacity(settings.max_messages);
        batch.push(first);
        let full = |batch: &Vec<IngestRequest>, bytes: usize| {
            batch.len() >= settings.max_messages || bytes >= settings.max_bytes
        };
        // Everything already waiting joins the batch.
        while !full(&batch, bytes) {
            let Ok(request) = rx.try_recv() else { break };
            bytes += request.message.payload.len();
            batch.push(request);
        }
        // Group commit: with a commit slot free the batch is written at once, so a reading at
        // light load waits for no linger. With every slot busy it keeps gathering until a slot
        // frees, it is full, or the linger passed (then it waits for the slot).
        if committing.len() >= concurrent {
            let deadline = Instant::now() + settings.linger;
            let mut lingering = true;
            while !full(&batch, bytes) {
                tokio::select! {
                    _ = committing.join_next() => break,
                    request = rx.recv(), if lingering => match request {
                        Some(request) => {
                            bytes += request.message.payload.len();
                            batch.push(request);
                        }
                        None => lingering = false,
                    },
                    () = tokio::time::sleep_until(deadline), if lingering => lingering = false,
                }
            }
            // Messages arriving while every commit slot is busy wait in the queue and form
            // the next batch. Outcomes may come back out of order; front doors acknowledge in
            // their own receive order.
            while committing.len() >= concurrent {
                committing.join_next().await;
            }
        }
        batches += 1;
        let span = tracing::debug_span!("ingest_batch", batch = batches, messages = batch.len());
        committing.spawn(commit(pipeline.clone(), batch, abandon.clone()).instrument(span));
    }
    while committing.join_next().await.is_some() {}
    tracing::debug!("ingest batcher stopped: every front door closed and the queue is empty");
}

/// Writes one batch, retrying with backoff until it commits or shutdown abandons it. A batch
/// the database refuses for what it holds ([`chronicle_storage::StorageError::is_refused_content`]: it would fail
/// the same way on every retry) is split in halves, each written the same way, until the
/// message at fault is alone; that one is refused ([`Pipeline::refuse_unstorable`]) and every
/// other message is stored.
async fn commit(pipeline: Pipeline, batch: Vec<IngestRequest>, abandon: CancellationToken) {
    let (messages, replies): (Vec<IncomingMessage>, Vec<_>) =
        batch.into_iter().map(|r| (r.message, r.reply)).unzip();
    let mut outcomes: Vec<Option<MessageOutcome>> = vec![None; messages.len()];
    // Ranges of the batch still to write, the next one last.
    let mut unwritten = Vec::with_capacity(1);
    unwritten.push(0..messages.len());
    let mut backoff = Duration::from_millis(100);
    while let Some(range) = unwritten.pop() {
        let part = &messages[range.clone()];
        match pipeline.process(part).await {
            Ok(written) => {
                for (slot, outcome) in outcomes[range].iter_mut().zip(written) {
                    *slot = Some(outcome);
                }
            }
            Err(error) if error.is_refused_content() && part.len() > 1 => {
                tracing::warn!(
                    %error,
                    messages = part.len(),
                    "the database refused what a batch holds; writing each half on its own"
                );
                let middle = range.start + part.len() / 2;
                unwritten.push(middle..range.end);
                unwritten.push(range.start..middle);
            }
            Err(error) if error.is_refused_content() => {
                outcomes[range.start] = Some(pipeline.refuse_unstorable(&part[0], &error).await);
            }
            Err(error) => {
                pipeline.metrics().storage_errors.inc();
                tracing::warn!(
                    %error,
                    transient = error.is_transient(),
                    messages = part.len(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "batch not committed; nothing acknowledged, retrying"
                );
                unwritten.push(range);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = abandon.cancelled() => {
                        tracing::warn!(
                            messages = messages.len(),
                            "shutting down with a batch still uncommitted; it stays unacknowledged \
                             and the broker will deliver it again"
                        );
                        // Dropping the replies unanswered tells each front door so; a part
                        // of the batch already committed is answered.
                        answer(replies, outcomes);
                        return;
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    answer(replies, outcomes);
}

/// Sends each message's outcome, where it has one.
fn answer(replies: Vec<oneshot::Sender<MessageOutcome>>, outcomes: Vec<Option<MessageOutcome>>) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        if let Some(outcome) = outcome {
            // The front door may have gone away; the data is committed either way.
            let _ = reply.send(outcome);
        }
    }
}
