//! A server launched inside the test process, as `chronicle serve` would launch it, on
//! listeners bound to port 0 before launch (so no port can be lost to another test), against
//! the test's own database.
//!
//! Tests that need what only a separate process gives (signals, a crash, the command line, the
//! demo) start the real binary with [`crate::ChronicleServer`] instead.

use crate::clinic::Clinic;
use crate::server::chronicle_binary;
use crate::{ServerUnderTest, TestDatabase};
use anyhow::Context;
use chronicle_domain::DeviceKind;
use chronicle_server::{Database, Endpoints, Listeners, launch};
use chronicle_storage::{NewPatient, Store};
use std::path::PathBuf;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A running server of one test.
pub struct TestApp {
    endpoints: Endpoints,
    database_url: String,
    data_dir: tempfile::TempDir,
    shutdown: CancellationToken,
    stopped: Option<oneshot::Receiver<()>>,
    http: reqwest::Client,
}

impl TestApp {
    /// `chronicle serve` on the embedded broker against `database`, with more `serve` flags.
    pub async fn launch(database: &TestDatabase, serve_args: &[&str]) -> anyhow::Result<TestApp> {
        init_test_logging();
        let data_dir = tempfile::Builder::new()
            .prefix("chronicle-app-")
            .tempdir()?;
        let mut args: Vec<String> = vec![
            "chronicle".into(),
            "--database-url".into(),
            database.url.clone(),
            "--data-dir".into(),
            data_dir.path().display().to_string(),
        ];
        // The TimescaleDB leg of scripts/test: the server must use it, or fail.
        if let Ok(mode) = std::env::var("CHRONICLE_TEST_TIMESCALE") {
            args.extend(["--timescale".into(), mode]);
        }
        args.extend(
            [
                "serve",
                "--http-addr",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
            ]
            .map(String::from),
        );
        args.extend(serve_args.iter().map(|a| (*a).to_owned()));
        let (database_settings, settings) = chronicle_server::serve_settings_from_args(&args)?;

        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<Endpoints>>();
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let token = shutdown.clone();
        // The server gets a runtime of its own, as in its own process: a test that blocks its
        // runtime cannot stall the server, and the server's shutdown does not wait on the test.
        std::thread::Builder::new()
            .name("chronicle-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut database = match Database::open(&database_settings).await {
                        Ok(database) => database,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let launched = async {
                        let listeners = Listeners::bind(&settings).await?;
                        launch(&database, &settings, listeners, token).await
                    }
                    .await;
                    match launched {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok(running.endpoints.clone()));
                            running.stopped().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                    database.close().await;
                });
                let _ = stopped_tx.send(());
            })?;
        let endpoints = ready_rx
            .await
            .context("the server thread ended before it was ready")??;
        Ok(TestApp {
            endpoints,
            database_url: database.url.clone(),
            data_dir,
            shutdown,
            stopped: Some(stopped_rx),
            http: reqwest::Client::new(),
        })
    }

    pub fn mqtt_port(&self) -> u16 {
        self.endpoints.mqtt_port
    }

    /// An HTTP client for the server.
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The server's own store (the database the test created).
    pub fn store(&self) -> &Store {
        &self.endpoints.store
    }

    /// A clinic fixture: an organization with a care team and a clinician.
    pub async fn clinic(&self, name: &str) -> Clinic {
        Clinic::new(self.store(), name).await
    }

    /// Registers a patient (in UTC) and returns its id (as [`crate::ChronicleServer`] does,
    /// without the command line).
    pub async fn add_patient(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .store()
            .create_patient(&NewPatient {
                display_name: name.into(),
                time_zone: "UTC".into(),
            })
            .await?
            .id
            .to_string())
    }

    /// Registers a device (`kind` as on the command line) and returns `(device_id, secret)`.
    pub async fn add_device(
        &self,
        patient_id: &str,
        kind: &str,
    ) -> anyhow::Result<(String, String)> {
        let kind: DeviceKind = kind.parse()?;
        let credentials = self
            .store()
            .create_device(patient_id.parse()?, kind, None)
            .await?
            .1;
        Ok((credentials.id.to_string(), credentials.secret))
    }

    pub fn http_url(&self, path: &str) -> String {
        self.endpoints.http_url(path)
    }

    /// The server's Prometheus metrics (`/metrics`).
    pub async fn metrics(&self) -> anyhow::Result<crate::server::Metrics> {
        crate::server::Metrics::fetch(&reqwest::Client::new(), &self.http_url("/metrics")).await
    }

    /// Runs an admin command (`chronicle <args>`, the real binary) against the same database.
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(chronicle_binary()?)
            .env_remove("CHRONICLE_DATABASE_URL")
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(args)
            .output()
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "chronicle {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }

    /// Stops the server gracefully and waits until it has stopped.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }
}

impl ServerUnderTest for TestApp {
    fn http_url(&self, path: &str) -> String {
        TestApp::http_url(self, path)
    }

    fn mqtt_port(&self) -> u16 {
        TestApp::mqtt_port(self)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The server thread finishes its graceful shutdown on its own.
        self.shutdown.cancel();
    }
}

/// The server's logs in the test's output (shown for a failing test), filtered by
/// `CHRONICLE_LOG` as the binary's are.
fn init_test_logging() {
    let filter = std::env::var("CHRONICLE_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}
