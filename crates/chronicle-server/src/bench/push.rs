//! A push service on loopback for `chronicle bench alerts`: the probes' clinician subscribes
//! to it as a browser does (a Web Push channel with a real P-256 key and auth secret, so the
//! server encrypts every payload per RFC 8291 and signs it with VAPID as for a browser), and
//! it records when each push request arrived. It answers 201 and decrypts nothing: the alarm a
//! push carries is known from the server's delivery log, since one channel's deliveries are
//! sent one at a time in event order.

use super::alarms::{AlarmTimes, Alarms, answer};
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chronicle_alerts::notifications::VapidKey;
use chronicle_storage::Store;
use chronicle_storage::notifications::ChannelTarget;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Push requests larger than this are not a notification: the receiver stops reading.
const MAX_BODY: usize = 64 * 1024;

type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// The receiver, and the subscription a browser would hand the server for it.
pub struct PushReceiver {
    endpoint: String,
    /// The subscription's P-256 key pair (a browser's `p256dh`): its private half would
    /// decrypt the payloads.
    key: VapidKey,
    auth: String,
    arrivals: Arrivals,
    task: JoinHandle<()>,
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PushReceiver {
    /// Listens on a free loopback port (the server must allow it: `--webhook-allow
    /// 127.0.0.1`).
    pub async fn start() -> anyhow::Result<PushReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen for pushes")?;
        let endpoint = format!("http://{}/push/bench", listener.local_addr()?);
        let arrivals = Arrivals::default();
        let recorded = arrivals.clone();
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(receive(connection, recorded.clone()));
            }
        });
        let mut auth = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut auth);
        Ok(PushReceiver {
            endpoint,
            key: VapidKey::from_private(&VapidKey::generate_private(), String::new())
                .map_err(anyhow::Error::msg)?,
            auth: URL_SAFE_NO_PAD.encode(auth),
            arrivals,
            task,
        })
    }

    /// Gives `user_id` a Web Push channel to this receiver; its id.
    pub async fn subscribe(&self, store: &Store, user_id: Uuid) -> anyhow::Result<Uuid> {
        let target = ChannelTarget::WebPush {
            endpoint: self.endpoint.clone(),
            p256dh: self.key.public_key(),
            auth: self.auth.clone(),
        };
        Ok(store
            .create_channel(user_id, &target, Some("benchmark push receiver"))
            .await?
            .id)
    }

    /// Times every alarm of `raised` from its publish to the arrival of the push that carried
    /// it, waiting up to `patience` for the channel's deliveries to settle.
    pub async fn times(
        &self,
        store: &Store,
        user_id: Uuid,
        channel_id: Uuid,
        raised: &Alarms,
        patience: Duration,
    ) -> anyhow::Result<AlarmTimes> {
        let deadline = Instant::now() + patience;
        let delivered = loop {
            let log = store.notification_deliveries(user_id, 1_000_000).await?;
            let mine: Vec<_> = log
                .into_iter()
                .filter(|d| d.channel_id == channel_id)
                .collect();
            let settled = mine
                .iter()
                .all(|d| d.status != "pending" && d.status != "held");
            if (settled && !mine.is_empty()) || Instant::now() > deadline {
                let mut delivered: Vec<_> = mine
                    .into_iter()
                    .filter(|d| d.status == "delivered")
                    .collect();
                delivered.sort_by_key(|d| d.id);
                break delivered;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let first_event = delivered.iter().map(|d| d.event_id).min().unwrap_or(0);
        let events: HashMap<i64, _> = store
            .alert_events_after(first_event - 1, 1_000_000)
            .await?
            .into_iter()
            .map(|e| (e.id, (e.patient_id, e.alert.last_seen_at)))
            .collect();
        let arrivals = self
            .arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("the push receiver failed"))?
            .clone();
        if arrivals.len() != delivered.len() {
            tracing::warn!(
                pushes = arrivals.len(),
                delivered = delivered.len(),
                "pushes received and deliveries logged differ"
            );
        }
        let mut pending = raised.clone();
        let mut latencies = Vec::new();
        // One channel's deliveries go one at a time in event order: the n-th push received is
        // the n-th delivered.
        for (delivery, arrived) in delivered.iter().zip(arrivals) {
            if let Some((patient, last_seen)) = events.get(&delivery.event_id) {
                latencies.extend(answer(&mut pending, *patient, *last_seen, arrived));
            }
        }
        latencies.sort_unstable();
        Ok(AlarmTimes {
            latencies,
            missed: pending.len(),
            raised: raised.clone(),
        })
    }
}

/// One connection of the push client: HTTP/1.1 requests, kept alive, each recorded when its
/// body has arrived and answered 201 Created (RFC 8030 §5).
async fn receive(connection: TcpStream, arrivals: Arrivals) -> std::io::Result<()> {
    let mut reader = BufReader::new(connection);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        if length > MAX_BODY {
            return Ok(());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        if let Ok(mut arrivals) = arrivals.lock() {
            arrivals.push(Instant::now());
        }
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            .await?;
    }
}
