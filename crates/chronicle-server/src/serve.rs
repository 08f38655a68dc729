//! `chronicle serve`: the database, the broker (embedded or external), the ingest, the alert
//! engine and the HTTP API in one process, with a graceful shutdown on SIGINT/SIGTERM.

use crate::cli::{DatabaseSettings, MqttEndpoint, ServeSettings};
use crate::database::Database;
use crate::device_channel::{MosquittoSync, RegistryAuthority, follow_registry};
use anyhow::Context;
use chronicle_alerts::{AlertMetrics, AlertServices, AlertSettings};
use chronicle_broker::{Broker, BrokerMetrics, BrokerSettings, Listener};
use chronicle_domain::wire::DecodeLimits;
use chronicle_ingest::batcher::spawn_batcher;
use chronicle_ingest::mqtt::{self, BrokerStatus, MqttSettings};
use chronicle_ingest::registry_cache::RegistryCache;
use chronicle_ingest::{BatchSettings, IngestHandle, IngestMetrics, Pipeline};
use chronicle_storage::Store;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Runs the server until `main` returns (for `serve`: a SIGINT or SIGTERM), then shuts down
/// gracefully and returns `main`'s outcome.
pub async fn serve<F, Fut>(
    database: &Database,
    settings: &ServeSettings,
    main: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Endpoints) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let listeners = Listeners::bind(settings).await?;
    let shutdown = CancellationToken::new();
    let running = launch(database, settings, listeners, shutdown.clone()).await?;
    tracing::info!(database = %database.endpoint, "database");
    running.log_endpoints();
    println!(
        "Chronicle is running. Dashboard: {}   (Ctrl-C to stop)",
        running.endpoints.http_url("/")
    );
    let outcome = main(running.endpoints.clone()).await;
    shutdown.cancel();
    running.stopped().await;
    outcome
}

/// The sockets a server answers on, bound before anything starts: a port conflict stops
/// start-up early, and a caller (a test) can bind port 0 and learn the port before launch.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    /// The embedded broker's plain listener (none with an external broker).
    pub mqtt: Option<tokio::net::TcpListener>,
    /// The embedded broker's TLS listener (with a certificate).
    pub mqtt_tls: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses the settings name.
    pub async fn bind(settings: &ServeSettings) -> anyhow::Result<Listeners> {
        let http = bind(settings.http_addr, "HTTP", "--http-addr").await?;
        let (mqtt, mqtt_tls) = match &settings.mqtt {
            // A process without the ingest has no broker to listen for.
            _ if !settings.ingest => (None, None),
            MqttEndpoint::Embedded { listen, tls_listen } => {
                let mqtt = bind(*listen, "MQTT", "--mqtt-listen").await?;
                let tls = match (tls_listen, &settings.tls) {
                    (Some(addr), Some(_)) => {
                        Some(bind(*addr, "MQTT over TLS", "--mqtt-tls-listen").await?)
                    }
                    _ => None,
                };
                (Some(mqtt), tls)
            }
            MqttEndpoint::External { .. } => (None, None),
        };
        Ok(Listeners {
            http,
            mqtt,
            mqtt_tls,
        })
    }
}

/// Where a running server answers, for a command or test working beside it.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub http_addr: SocketAddr,
    /// `https` with a certificate, else `http`.
    pub http_scheme: &'static str,
    /// Where devices reach the broker (without TLS when the embedded broker has both).
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// The embedded broker's TLS listener, when it has one.
    pub mqtt_tls_addr: Option<SocketAddr>,
    pub topic_prefix: String,
    pub store: Store,
}

impl Endpoints {
    pub fn http_url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.http_scheme, self.http_addr)
    }
}

/// A launched server: its endpoints, and the task that shuts it down gracefully once the
/// shutdown token given to [`launch`] is cancelled.
pub struct Running {
    pub endpoints: Endpoints,
    external_mqtt: Option<String>,
    broker_addrs: Vec<chronicle_broker::ListenAddr>,
    teardown: JoinHandle<()>,
}

impl Running {
    /// Waits until the server has stopped (after its shutdown token is cancelled).
    pub async fn stopped(self) {
        if let Err(e) = self.teardown.await {
            tracing::error!(error = %e, "shutdown task failed");
        }
    }

    fn log_endpoints(&self) {
        for addr in &self.broker_addrs {
            let scheme = if addr.tls { "mqtts" } else { "mqtt" };
            tracing::info!(
                mqtt = %format!("{scheme}://{}", addr.addr),
                "embedded MQTT broker (sessions in memory only: a device's subscriptions and \
                 undelivered acks are gone when the server stops; a reading is acknowledged \
                 only once stored)"
            );
        }
        if let Some(external) = &self.external_mqtt {
            tracing::info!(mqtt = %external, "external MQTT broker");
        }
        tracing::info!(http = %self.endpoints.http_url(""), "HTTP API");
    }
}

/// Starts the ingest (and the embedded broker), the alert engine, the trend rollups and the
/// HTTP API on `listeners`, against a migrated database. Everything runs until `shutdown` is
/// cancelled; then it stops gracefully (no new messages, those in hand committed and
/// acknowledged within the grace period) and [`Running::stopped`] returns.
pub async fn launch(
    database: &Database,
    settings: &ServeSettings,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let store = database.store.clone();
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let alert_metrics = AlertMetrics::register(&mut registry);
    let broker_metrics = BrokerMetrics::register(&mut registry);

    let http_addr = listeners.http.local_addr()?;
    let http_tls = match &settings.tls {
        Some(files) => Some(
            chronicle_broker::tls::server_config(
                &files.certificate_chain,
                &files.private_key,
                // axum serves HTTP/1.1 here: offering h2 would make clients pick a protocol
                // the server does not speak.
                &[b"http/1.1"],
            )
            .context("cannot use the TLS certificate for HTTPS")?,
        ),
        None => None,
    };
    let mut mqtt_listeners = Vec::new();
    if let Some(tcp) = listeners.mqtt {
        mqtt_listeners.push(Listener { tcp, tls: None });
    }
    if let (Some(tcp), Some(files)) = (listeners.mqtt_tls, &settings.tls) {
        mqtt_listeners.push(Listener {
            tcp,
            tls: Some(
                chronicle_broker::tls::acceptor(&files.certificate_chain, &files.private_key)
                    .context("cannot use the TLS certificate for MQTT")?,
            ),
        });
    }

    let abandon = CancellationToken::new();
    let registry_cache = std::sync::Arc::new(RegistryCache::default());
    let registry_task = tokio::spawn({
        let (cache, store, shutdown) = (registry_cache.clone(), store.clone(), shutdown.clone());
        async move { cache.follow(store, shutdown).await }
    });
    let pipeline = Pipeline::new(
        store.clone(),
        DecodeLimits {
            max_message_bytes: settings.max_message_bytes,
            max_readings_per_message: settings.max_readings_per_message,
            max_future_skew: chrono::Duration::from_std(settings.max_future_skew)
                .unwrap_or(chrono::Duration::minutes(10)),
            max_age: chrono::Duration::days(i64::from(settings.max_reading_age_days)),
        },
        metrics.clone(),
    )
    .with_followup_consumers(&[
        chronicle_alerts::CONSUMER,
        chronicle_storage::trends::TRENDS_CONSUMER,
    ])
    .with_registry_cache(registry_cache);
    // Readings that may raise an urgent alarm go to this process's engine at once, if it runs.
    let urgent = chronicle_storage::UrgentPatients::default();
    let pipeline = if settings.followup_work {
        pipeline.with_urgent_lane(urgent.clone())
    } else {
        pipeline
    };
    // The alert engine and the trend rollups work from what each commit stored; each starts
    // at once on this process's commits and polls for those of other servers sharing the
    // database. Every commit queues the work whether or not this process does it.
    let vapid = vapid_key(&store, &settings.channels).await?;
    let alerts = AlertServices::start(
        store.clone(),
        pipeline.followups_enqueued(),
        pipeline.ingest_backlog(),
        urgent,
        AlertSettings {
            evaluate: settings.followup_work,
            window_patients: settings.alert_window_patients,
            webhooks: chronicle_alerts::WebhookSettings {
                destinations: settings.webhook_destinations.clone(),
                ..chronicle_alerts::WebhookSettings::default()
            },
            notifications: chronicle_alerts::NotificationSettings {
                delivery: chronicle_alerts::WebhookSettings {
                    destinations: settings.webhook_destinations.clone(),
                    ..chronicle_alerts::WebhookSettings::default()
                },
                email: settings.channels.email.clone(),
                vapid: Some(vapid.clone()),
                dashboard_url: settings.channels.public_url.clone(),
            },
            ..AlertSettings::default()
        },
        alert_metrics,
        shutdown.clone(),
    );
    let trends_task = settings.followup_work.then(|| {
        tokio::spawn(crate::trends::run(
            store.clone(),
            pipeline.followups_enqueued(),
            pipeline.ingest_backlog(),
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
    let front_door = if settings.ingest {
        Some(
            start_front_door(
                settings,
                &store,
                mqtt_listeners,
                ingest.clone(),
                &broker_status,
                &metrics,
                broker_metrics,
                shutdown.clone(),
            )
            .await?,
        )
    } else {
        tracing::warn!(
            "--ingest false: this process reads no MQTT (devices reach another chronicle \
             serve); uploads over HTTP (Nightscout, imports, FHIR) still go through its ingest"
        );
        // Ready as soon as the database is: there is no broker to wait for.
        broker_status.set(true, &metrics);
        None
    };

    let login_guard = Arc::new(chronicle_http::login_guard::LoginGuard::new(&mut registry));
    let router = chronicle_http::router(chronicle_http::AppState {
        store: store.clone(),
        broker: broker_status,
        metrics: Arc::new(registry),
        authenticator: Arc::new(chronicle_http::auth::StoreAuthenticator(store.clone())),
        alerts: alerts.hub.clone(),
        shutdown: shutdown.clone(),
        mqtt_topic_prefix: settings.mqtt_topic_prefix.clone(),
        broker_hooks_secret: settings.broker_hooks_secret.clone(),
        research_holdback: chrono::Duration::days(i64::from(settings.research_holdback_days)),
        webhook_destinations: settings.webhook_destinations.clone(),
        vapid_public_key: vapid.public_key(),
        mailer: settings.channels.email.as_ref().and_then(|email| {
            chronicle_alerts::mail::Mailer::new(
                email,
                chronicle_alerts::WebhookSettings::default().timeout,
            )
            .inspect_err(|error| tracing::error!(%error, "e-mail is not sent"))
            .ok()
        }),
        public_url: settings.channels.public_url.clone(),
        request_timeout: settings.http_request_timeout,
        login_guard,
        trusted_proxies: settings.http_trusted_proxies.clone().into(),
        ingest: ingest.clone(),
    });
    let http_task = tokio::spawn(chronicle_http::serve(
        listeners.http,
        http_tls,
        router,
        shutdown.clone(),
    ));

    let (mqtt_host, mqtt_port, mqtt_tls_addr, broker_addrs, external_mqtt) = match &front_door {
        None => (String::new(), 0, None, Vec::new(), None),
        Some(FrontDoor::Embedded { broker, .. }) => {
            let addr = broker
                .addrs()
                .iter()
                .find(|a| !a.tls)
                .or(broker.addrs().first())
                .map(|a| a.addr)
                .context("the embedded broker has no listener")?;
            let tls_addr = broker.addrs().iter().find(|a| a.tls).map(|a| a.addr);
            (
                reachable_host(addr),
                addr.port(),
                tls_addr,
                broker.addrs().to_vec(),
                None,
            )
        }
        Some(FrontDoor::External { settings: mqtt, .. }) => (
            mqtt.host.clone(),
            mqtt.port,
            None,
            Vec::new(),
            Some(format!(
                "{}:{} (subscription {}, client id {})",
                mqtt.host,
                mqtt.port,
                mqtt.subscription(),
                mqtt.client_id
            )),
        ),
    };
    let endpoints = Endpoints {
        http_addr,
        http_scheme: if settings.tls.is_some() {
            "https"
        } else {
            "http"
        },
        mqtt_host,
        mqtt_port,
        mqtt_tls_addr,
        topic_prefix: settings.mqtt_topic_prefix.clone(),
        store: store.clone(),
    };
    let grace = settings.shutdown_grace;
    let teardown = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!(
            "shutting down: no new messages; committing and acknowledging those in hand"
        );
        let abandon_later = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abandon.cancel();
        });
        match front_door {
            None => {}
            Some(FrontDoor::Embedded { broker, registry }) => {
                // A little longer than the batcher's grace, so an abandoned batch ends first.
                broker.join(grace + Duration::from_secs(5)).await;
                let _ = registry.await;
            }
            Some(FrontDoor::External { task, registry, .. }) => {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "MQTT ingest task failed");
                }
                if let Some(registry) = registry {
                    let _ = registry.await;
                }
            }
        }
        if let Err(e) = batcher.await {
            tracing::error!(error = %e, "ingest batcher task failed");
        }
        abandon_later.abort();
        if let Err(e) = registry_task.await {
            tracing::error!(error = %e, "registry cache task failed");
        }
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
        tracing::info!("stopped");
    });
    Ok(Running {
        endpoints,
        external_mqtt,
        broker_addrs,
        teardown,
    })
}

/// How devices reach the ingest in this process.
enum FrontDoor {
    /// Chronicle's own broker, and the task telling it about registry changes.
    Embedded {
        broker: Broker,
        registry: JoinHandle<()>,
    },
    /// The ingest as a client of an external broker, and the task keeping an external
    /// Mosquitto's files (when configured).
    External {
        settings: MqttSettings,
        task: JoinHandle<()>,
        registry: Option<JoinHandle<()>>,
    },
}

#[allow(clippy::too_many_arguments)]
async fn start_front_door(
    settings: &ServeSettings,
    store: &Store,
    listeners: Vec<Listener>,
    ingest: IngestHandle,
    status: &BrokerStatus,
    metrics: &IngestMetrics,
    broker_metrics: BrokerMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<FrontDoor> {
    match &settings.mqtt {
        MqttEndpoint::Embedded { .. } => {
            let broker = Broker::start(
                BrokerSettings {
                    topic_prefix: settings.mqtt_topic_prefix.clone(),
                    max_packet_bytes: settings.mqtt_max_packet_bytes,
                    inflight_in: usize::from(settings.mqtt_inflight),
                    inflight_out: usize::from(settings.mqtt_inflight),
                    ..BrokerSettings::default()
                },
                listeners,
                RegistryAuthority(store.clone()),
                ingest,
                broker_metrics,
                shutdown.clone(),
            )
            .context("cannot start the embedded MQTT broker")?;
            status.set(true, metrics);
            let registry = tokio::spawn(follow_registry(
                store.clone(),
                Some(broker.registry_changes()),
                None,
                shutdown,
            ));
            Ok(FrontDoor::Embedded { broker, registry })
        }
        MqttEndpoint::External {
            host,
            port,
            credentials,
            tls,
            mosquitto,
        } => {
            let tls = match tls {
                Some(ca_file) => Some(
                    chronicle_broker::tls::client_config(ca_file.as_deref())
                        .context("cannot set up TLS towards the MQTT broker")?,
                ),
                None => None,
            };
            let mqtt = MqttSettings {
                host: host.clone(),
                port: *port,
                client_id: settings.mqtt_client_id.clone(),
                credentials: credentials.clone(),
                shared_group: settings.mqtt_shared_group.clone(),
                topic_prefix: settings.mqtt_topic_prefix.clone(),
                keep_alive: settings.mqtt_keep_alive,
                max_packet_bytes: settings.mqtt_max_packet_bytes,
                outgoing_inflight: settings.mqtt_inflight,
                tls,
            };
            let registry = match mosquitto {
                Some(files) => {
                    let sync = MosquittoSync::start(files, &settings.mqtt_topic_prefix, store)
                        .await
                        .context("cannot write Mosquitto's password and ACL files")?;
                    Some(tokio::spawn(follow_registry(
                        store.clone(),
                        None,
                        Some(sync),
                        shutdown.clone(),
                    )))
                }
                None => None,
            };
            let task = tokio::spawn(mqtt::run(mqtt.clone(), ingest, status.clone(), shutdown));
            Ok(FrontDoor::External {
                settings: mqtt,
                task,
                registry,
            })
        }
    }
}

/// Binds a listener, or says which setting to change.
async fn bind(
    addr: SocketAddr,
    what: &str,
    setting: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr} (is another program using it? use {setting})")
    })
}

/// The address a client on this machine dials to reach a listener on `addr`.
fn reachable_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
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

/// The VAPID key Web Push is signed with: the configured one, or the one kept in the database
/// (generated by the first server to start, then shared by every server on the database).
async fn vapid_key(
    store: &Store,
    channels: &crate::cli::ChannelSettings,
) -> anyhow::Result<chronicle_alerts::notifications::VapidKey> {
    use chronicle_alerts::notifications::{VAPID_KEY_NAME, VapidKey};
    let private = match &channels.vapid_private_key {
        Some(configured) => configured.clone(),
        None => {
            store
                .server_key_or_insert(VAPID_KEY_NAME, &VapidKey::generate_private())
                .await?
        }
    };
    VapidKey::from_private(&private, channels.vapid_subject.clone())
        .map_err(|e| anyhow::anyhow!("--vapid-private-key: {e}"))
}
