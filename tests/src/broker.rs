//! Mosquitto, the external broker the tests run (as a deployment would).

use crate::free_port;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

fn mosquitto_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
        .context(
            "Mosquitto is not installed: install it with `apt-get install mosquitto` \
             (scripts/test does this)",
        )
}

/// A Mosquitto broker on a free port, configured as `docs/protocol.md` recommends.
pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub async fn start() -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 max_inflight_messages 1000\n\
                 max_queued_messages 1000000\n\
                 persistence false\n\
                 log_dest stderr\n\
                 log_type error\n\
                 log_type warning\n"
            ),
        )?;
        let child = Command::new(mosquitto_binary()?)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto")?;
        let mut broker = Mosquitto {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(broker);
            }
            if let Some(status) = broker.child.try_wait()? {
                bail!("mosquitto exited at start ({status})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("mosquitto did not listen on port {port} within 5 s")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}
