//! The embedded MQTT broker: rumqttd running inside the Chronicle process.
//!
//! Only an MQTT 3.1.1 (v4) listener is started; there is no console, metrics
//! endpoint, bridge or cluster. Every CONNECT is checked by a caller-supplied
//! authentication function.
//!
//! **Sessions live in memory only.** Subscriptions of persistent sessions and
//! messages queued for clients that are offline are lost when the process
//! exits; devices must be prepared to resend whatever was not acknowledged.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{error, info, warn};

/// How long [`EmbeddedBroker::start`] waits for rumqttd to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval between connection attempts while waiting.
const START_POLL: Duration = Duration::from_millis(50);
/// How long a client may take between TCP connect and CONNECT. rumqttd stores this in a
/// `u16` of milliseconds, so 65 s is the most it can express.
const CONNECTION_TIMEOUT_MS: u16 = 60_000;
/// Messages the router hands to one subscriber per read of a topic log.
const MAX_OUTGOING_PACKET_COUNT: u64 = 1000;
/// Size of one in-memory segment of a topic's log.
const MAX_SEGMENT_SIZE: usize = 100 * 1024 * 1024;
/// Segments kept per topic log before the oldest is dropped.
const MAX_SEGMENT_COUNT: usize = 10;

/// Errors from starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Another program (often a system Mosquitto) already listens on the address.
    #[error(
        "cannot start the embedded MQTT broker: {addr} is already in use. Choose another \
         address with --mqtt-listen, or stop the other MQTT broker listening there"
    )]
    AddressInUse {
        /// The requested listen address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: io::Error,
    },

    /// Binding failed for another reason (e.g. a port below 1024 without privileges,
    /// or an address that does not belong to this machine).
    #[error("cannot start the embedded MQTT broker: could not listen on {addr}: {source}")]
    Bind {
        /// The requested listen address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: io::Error,
    },

    /// Port 0 would let rumqttd pick a port we could not learn and report.
    #[error("the embedded MQTT broker needs an explicit port, not {addr}")]
    NoPort {
        /// The requested listen address.
        addr: SocketAddr,
    },

    /// The broker thread could not be created.
    #[error("could not start the embedded MQTT broker thread: {0}")]
    Thread(#[source] io::Error),

    /// The broker thread ended during start-up; its own error is in the log.
    #[error(
        "the embedded MQTT broker stopped while starting on {addr}; see the preceding \
         rumqttd error in the log"
    )]
    Stopped {
        /// The requested listen address.
        addr: SocketAddr,
    },

    /// Nothing accepted connections in time.
    #[error("the embedded MQTT broker did not accept connections on {addr} within 5 s")]
    NotListening {
        /// The requested listen address.
        addr: SocketAddr,
    },
}

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerConfig {
    /// Address of the MQTT 3.1.1 listener, e.g. 127.0.0.1:1883; must name a port.
    pub listen: SocketAddr,
    /// Largest PUBLISH payload the broker accepts; bigger packets close the connection,
    /// which protects memory from misbehaving devices.
    pub max_payload_bytes: usize,
    /// Passed to rumqttd's `max_inflight_count`. Note: in rumqttd 0.20 this bounds how
    /// many packets are read from one connection per batch before they are handed to the
    /// router (the broker-to-client QoS 1 window is fixed at 100 inside rumqttd).
    pub max_inflight: usize,
    /// Concurrent client connections; further CONNECTs are refused so a flood of
    /// devices cannot exhaust memory.
    pub max_connections: usize,
}

/// A running embedded MQTT broker.
///
/// rumqttd has no shutdown API: the broker runs on background OS threads until the
/// process exits, and dropping this handle does not stop it. It keeps all state in
/// memory; messages queued for an offline client are lost if the process exits.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// The address clients connect to; reported to the rest of the server.
    listen: SocketAddr,
    /// The thread running rumqttd; kept so its liveness can be checked.
    thread: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts rumqttd on a background OS thread with an MQTT 3.1.1 (v4) listener on
    /// `config.listen` and returns once it accepts TCP connections (at most 5 s, during
    /// which the calling thread blocks).
    ///
    /// Every CONNECT is checked by `authenticate(client_id, username, password)`; a
    /// `false` (or a CONNECT without credentials) makes rumqttd close the connection
    /// without a CONNACK. When called inside a Tokio runtime, `authenticate`'s futures
    /// run on that runtime (so they may use its database pools and timers); otherwise
    /// they run on rumqttd's own single-threaded runtime.
    pub fn start<F, Fut>(config: EmbeddedBrokerConfig, authenticate: F) -> Result<Self, BrokerError>
    where
        F: Fn(String, String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let addr = config.listen;
        if addr.port() == 0 {
            return Err(BrokerError::NoPort { addr });
        }
        // rumqttd only logs a failed bind from its thread; check first so the caller
        // gets an error it can show.
        match TcpListener::bind(addr) {
            Ok(listener) => drop(listener),
            Err(source) if source.kind() == io::ErrorKind::AddrInUse => {
                return Err(BrokerError::AddressInUse { addr, source });
            }
            Err(source) => return Err(BrokerError::Bind { addr, source }),
        }

        let rumqttd_config = rumqttd_config(&config, authenticate);
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".to_owned())
            .spawn(move || {
                // Broker::new spawns the router thread; start() spawns the listener thread
                // and blocks joining it, i.e. normally forever.
                let mut broker = Broker::new(rumqttd_config);
                match broker.start() {
                    Ok(()) => error!(%addr, "embedded MQTT broker stopped"),
                    Err(e) => error!(%addr, error = %e, "embedded MQTT broker failed"),
                }
            })
            .map_err(BrokerError::Thread)?;

        let probe = probe_addr(addr);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&probe, START_POLL).is_ok() {
                break;
            }
            if thread.is_finished() {
                return Err(BrokerError::Stopped { addr });
            }
            if Instant::now() >= deadline {
                return Err(BrokerError::NotListening { addr });
            }
            std::thread::sleep(START_POLL);
        }
        info!(%addr, "embedded MQTT broker listening (MQTT 3.1.1, sessions kept in memory only)");
        Ok(EmbeddedBroker {
            listen: addr,
            thread,
        })
    }

    /// The address the broker listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// False if the broker thread has ended (rumqttd failed); it never ends otherwise.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// The rumqttd configuration for `config`, with `authenticate` as external auth.
fn rumqttd_config<F, Fut>(config: &EmbeddedBrokerConfig, authenticate: F) -> Config
where
    F: Fn(String, String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    // Captured here because the callback runs on rumqttd's runtime, not the caller's.
    let app_runtime = tokio::runtime::Handle::try_current().ok();
    let mut server = ServerSettings {
        name: "chronicle-mqtt-v4".to_owned(),
        listen: config.listen,
        tls: None,
        // rumqttd sleeps this long after every accept; a delay of n ms would cap accepts
        // at 1000/n per second and slow down reconnection of all devices after a restart.
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: CONNECTION_TIMEOUT_MS,
            max_payload_size: config.max_payload_bytes,
            max_inflight_count: config.max_inflight,
            auth: None,
            external_auth: None,
            // Clients may subscribe to filters that nobody has published to yet.
            dynamic_filters: true,
        },
    };
    server.set_auth_handler(move |client_id, username, password| {
        let verdict = authenticate(client_id, username, password);
        let app_runtime = app_runtime.clone();
        async move {
            match app_runtime {
                // Run on the application's runtime: resources such as database pools
                // are tied to it, and rumqttd's listener runtime has a single thread
                // that also serves every connection's I/O.
                Some(runtime) => match runtime.spawn(verdict).await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "MQTT authentication task failed; rejecting client");
                        false
                    }
                },
                None => verdict.await,
            }
        }
    });

    Config {
        id: 0,
        router: RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: MAX_OUTGOING_PACKET_COUNT,
            max_segment_size: MAX_SEGMENT_SIZE,
            max_segment_count: MAX_SEGMENT_COUNT,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        // No v5/ws listener, cluster, console, bridge, prometheus or metrics timer.
        ..Config::default()
    }
}

/// Where to connect to reach a listener on `addr`: a wildcard listen address is
/// reachable through the loopback address of the same family.
fn probe_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), v4.port())
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), v6.port())
        }
        other => other,
    }
}
