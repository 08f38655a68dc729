//! Services that the Chronicle server can run inside (or beside) its own
//! process so that a single binary is enough for a small installation:
//!
//! * [`postgres`]: a private PostgreSQL cluster under Chronicle's data
//!   directory, started and stopped by the server itself.
//! * [`broker`]: an embedded MQTT broker (rumqttd) that keeps everything in
//!   memory.
//! * [`mosquitto`]: Mosquitto as a child process, for the benchmark and the tests that run
//!   Chronicle against an external broker (the server itself never starts it).

pub mod broker;
pub mod mosquitto;
pub mod postgres;

pub use broker::{BrokerError, EmbeddedBroker, EmbeddedBrokerConfig};
pub use mosquitto::{Mosquitto, MosquittoError};
pub use postgres::{
    PrivatePostgres, PrivatePostgresConfig, PrivatePostgresError, data_dir_is_usable,
    find_server_binaries,
};
