//! `chronicle serve`: the database, the broker (embedded or external), the ingest, the alert
//! engine and the HTTP API in one process, with a graceful shutdown on SIGINT/SIGTERM.

use crate::cli::{DatabaseSettings, MqttEndpoint, ServeSettings};
use crate::database::Database;
use anyhow::Context;
use chronicle_alerts::{AlertMetrics, AlertServices, AlertSettings};
use chronicle_domain::wire::DecodeLimits;
use chronicle_embedded::{EmbeddedBroker, EmbeddedBrokerConfig};
use chronicle_ingest::batcher::spawn_batcher;
use chronicle_ingest::mqtt::{self, BrokerStatus, MqttSettings};
use chronicle_ingest::{BatchSettings, IngestMetrics, Pipeline};
use chronicle_storage::Store;
use prometheus_client::registry::Registry;
use rand::distr::{Alphanumeric, SampleString};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The username the ingest itself uses on the embedded broker.
const INGEST_USERNAME: &str = "chronicle-ingest";

pub async fn run(
    database_settings: DatabaseSettings,
    settings: ServeSettings,
) -> anyhow::Result<()> {
    let mut database = Database::open(&database_settings).await?;
    let result = serve(&database, &settings, |_| async {
        wait_for_signal().await;
        Ok(())
    })
    .await;
    database.close().await;
    result
}

/// The running server, for a command that works beside it (`chronicle demo`).
pub struct Running {
    pub http_addr: std::net::SocketAddr,
    /// Where devices reach the broker.
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub topic_prefix: String,
    pub store: Store,
}

/// Runs the server until `main` returns (for `serve`: a SIGINT or SIGTERM), then shuts down
/// gracefully and returns `main`'s outcome.
pub async fn serve<F, Fut>(
    database: &Database,
    settings: &ServeSettings,
    main: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Running) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let store = database.store.clone();
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let alert_metrics = AlertMetrics::register(&mut registry);

    // Bind HTTP first: a port conflict should stop start-up before anything else runs.
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {} (use --http-addr)",
                settings.http_addr
            )
        })?;
    let http_addr = listener.local_addr()?;

    let (mqtt_settings, broker) = connect_broker(settings, &store)?;

    let shutdown = CancellationToken::new();
    let abandon = CancellationToken::new();
    let pipeline = Pipeline::new(
        store.clone(),
        DecodeLimits {
            max_message_bytes: settings.max_message_bytes,
            max_readings_per_message: settings.max_readings_per_message,
            max_future_skew: chrono::Duration::from_std(settings.max_future_skew)
                .unwrap_or(chrono::Duration::minutes(10)),
        },
        metrics,
    )
    .with_followup_consumers(&[
        chronicle_alerts::CONSUMER,
        chronicle_storage::trends::TRENDS_CONSUMER,
    ]);
    // The alert engine and the trend rollups work from what each commit stored; each starts
    // at once on this process's commits and polls for those of other servers sharing the
    // database. Every commit queues the work whether or not this process does it.
    let alerts = AlertServices::start(
        store.clone(),
        pipeline.followups_enqueued(),
        AlertSettings {
            evaluate: settings.followup_work,
            ..AlertSettings::default()
        },
        alert_metrics,
        shutdown.clone(),
    );
    let trends_task = settings.followup_work.then(|| {
        tokio::spawn(crate::trends::run(
            store.clone(),
            pipeline.followups_enqueued(),
            shutdown.clone(),
        ))
    });
    if !settings.followup_work {
        tracing::warn!(
            "--followup-work false: alerts and trend rollups are left to another chronicle \
             serve on this database"
        );
    }
    let (ingest, batcher) = spawn_batcher(
        pipeline,
        BatchSettings {
            max_messages: settings.batch_max_messages,
            linger: settings.batch_linger,
            concurrent_commits: settings.batch_concurrent_commits,
            ..BatchSettings::default()
        },
        abandon.clone(),
    );
    let broker_status = BrokerStatus::default();
    let mqtt_task = tokio::spawn(mqtt::run(
        mqtt_settings.clone(),
        ingest,
        broker_status.clone(),
        shutdown.clone(),
    ));

    let router = chronicle_http::router(chronicle_http::AppState {
        store: store.clone(),
        broker: broker_status,
        metrics: Arc::new(registry),
        authenticator: Arc::new(chronicle_http::auth::StoreAuthenticator(store.clone())),
        alerts: alerts.hub.clone(),
        shutdown: shutdown.clone(),
    });
    let http_task = tokio::spawn(chronicle_http::serve(listener, router, shutdown.clone()));

    tracing::info!(database = %database.endpoint, "database");
    match &broker {
        Some(b) => tracing::info!(
            mqtt = %format!("mqtt://{}", b.listen_addr()),
            "embedded MQTT broker (in memory only: messages queued for offline clients are lost when the server stops)"
        ),
        None => {
            tracing::info!(mqtt = %format!("mqtt://{}:{}", mqtt_settings.host, mqtt_settings.port), "external MQTT broker")
        }
    }
    tracing::info!(subscription = %mqtt_settings.subscription(), client_id = %mqtt_settings.client_id, "MQTT ingest");
    tracing::info!(http = %format!("http://{http_addr}"), "HTTP API");
    println!("Chronicle is running. Dashboard: http://{http_addr}/   (Ctrl-C to stop)");

    let (mqtt_host, mqtt_port) = match &broker {
        Some(b) => {
            let addr = b.listen_addr();
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            (host, addr.port())
        }
        None => (mqtt_settings.host.clone(), mqtt_settings.port),
    };
    let outcome = main(Running {
        http_addr,
        mqtt_host,
        mqtt_port,
        topic_prefix: settings.mqtt_topic_prefix.clone(),
        store: store.clone(),
    })
    .await;
    tracing::info!("shutting down: no new messages; committing and acknowledging those in hand");
    shutdown.cancel();
    let grace = settings.shutdown_grace;
    let abandon_later = tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        abandon.cancel();
    });
    if let Err(e) = mqtt_task.await {
        tracing::error!(error = %e, "MQTT ingest task failed");
    }
    if let Err(e) = batcher.await {
        tracing::error!(error = %e, "ingest batcher task failed");
    }
    abandon_later.abort();
    if let Some(task) = trends_task
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "trends task failed");
    }
    match http_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    alerts.join().await;
    drop(broker);
    tracing::info!("stopped");
    outcome
}

/// Starts the embedded broker when no external one is configured, and returns how the ingest
/// reaches its broker.
fn connect_broker(
    settings: &ServeSettings,
    store: &Store,
) -> anyhow::Result<(MqttSettings, Option<EmbeddedBroker>)> {
    let base = |host: String, port: u16, credentials| MqttSettings {
        host,
        port,
        client_id: settings.mqtt_client_id.clone(),
        credentials,
        shared_group: settings.mqtt_shared_group.clone(),
        topic_prefix: settings.mqtt_topic_prefix.clone(),
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: settings.mqtt_max_packet_bytes,
        outgoing_inflight: settings.mqtt_inflight,
    };
    match &settings.mqtt {
        MqttEndpoint::External {
            host,
            port,
            credentials,
        } => Ok((base(host.clone(), *port, credentials.clone()), None)),
        MqttEndpoint::Embedded { listen } => {
            // The ingest's own password lives only in this process's memory.
            let ingest_password = Alphanumeric.sample_string(&mut rand::rng(), 32);
            let expected = ingest_password.clone();
            let store = store.clone();
            let broker = EmbeddedBroker::start(
                EmbeddedBrokerConfig {
                    listen: *listen,
                    max_payload_bytes: settings.mqtt_max_packet_bytes,
                    max_inflight: usize::from(settings.mqtt_inflight),
                    max_connections: 10_000,
                },
                move |client_id: String, username: String, password: String| {
                    let store = store.clone();
                    let expected = expected.clone();
                    async move {
                        authenticate(&store, &expected, &client_id, &username, &password).await
                    }
                },
            )
            .context("cannot start the embedded MQTT broker")?;
            let addr = broker.listen_addr();
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            let mqtt = base(
                host,
                addr.port(),
                Some((INGEST_USERNAME.to_owned(), ingest_password)),
            );
            Ok((mqtt, Some(broker)))
        }
    }
}

/// The embedded broker's check of every CONNECT: the ingest itself, or a registered device
/// that is not revoked, with its secret. Per-topic authorization comes with later security
/// work and will hang off this same function.
async fn authenticate(
    store: &Store,
    ingest_password: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> bool {
    if username == INGEST_USERNAME {
        return password == ingest_password;
    }
    match store.verify_device_secret(username, password).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::info!(
                client_id,
                username,
                "MQTT connection refused: unknown device, revoked device or wrong secret"
            );
            false
        }
        Err(e) => {
            tracing::warn!(client_id, username, error = %e, "MQTT connection refused: cannot check credentials");
            false
        }
    }
}

pub async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
