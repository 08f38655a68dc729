//! Services that the Chronicle server can run beside its own process so that a single binary
//! is enough for a small installation (the embedded MQTT broker is `chronicle-broker`):
//!
//! * [`postgres`]: a private PostgreSQL cluster under Chronicle's data
//!   directory, started and stopped by the server itself.
//! * [`mosquitto`]: Mosquitto as a child process, for the benchmark and the tests that run
//!   Chronicle against an external broker (the server itself never starts it).

pub mod mosquitto;
pub mod postgres;

pub use mosquitto::{Mosquitto, MosquittoError, MosquittoTls};
pub use postgres::{
    PrivatePostgres, PrivatePostgresConfig, PrivatePostgresError, data_dir_is_usable,
    find_server_binaries, machine_memory_bytes,
};
