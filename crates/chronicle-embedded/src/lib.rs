//! Services that the Chronicle server can run inside (or beside) its own
//! process so that a single binary is enough for a small installation:
//!
//! * [`postgres`]: a private PostgreSQL cluster under Chronicle's data
//!   directory, started and stopped by the server itself.
//! * [`broker`]: an embedded MQTT broker (rumqttd) that keeps everything in
//!   memory.

pub mod broker;
pub mod postgres;

pub use broker::{BrokerError, EmbeddedBroker, EmbeddedBrokerConfig};
pub use postgres::{
    PrivatePostgres, PrivatePostgresConfig, PrivatePostgresError, data_dir_is_usable,
    find_server_binaries,
};
