//! `chronicle serve` on its embedded defaults: a private PostgreSQL it starts itself and the
//! embedded broker. Admin commands work beside the running server; data survives restarts.

use chronicle_tests::server::{chronicle_binary, traversable_tempdir};
use chronicle_tests::{ChronicleServer, ServerOptions, TestDevice};
use serde_json::json;

fn reading(minutes_ago: i64) -> String {
    let at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    json!({"type": "glucose", "value": 104, "unit": "mg/dL", "measured_at": at.to_rfc3339()})
        .to_string()
}

#[tokio::test]
async fn private_postgres_and_embedded_broker_keep_data_between_runs() {
    let dir = traversable_tempdir().expect("data dir");
    let data_dir = dir.path().join("data");
    let mut server = ChronicleServer::start(ServerOptions {
        data_dir: Some(data_dir.clone()),
        ..Default::default()
    })
    .await
    .expect("serve starts its own PostgreSQL");
    assert!(
        data_dir.join("postgres/PG_VERSION").exists(),
        "cluster initialised in the data dir"
    );
    assert!(
        server.log().contains("in memory only"),
        "the embedded broker says it is in-memory only"
    );

    // Admin commands while the server runs use its database and leave it running.
    let patient = server.add_patient("Grace Default").await.expect("patient");
    let (device_id, secret) = server.add_device(&patient, "meter").await.expect("device");
    let listed = server
        .admin(&["device", "list"])
        .await
        .expect("device list");
    assert!(listed.contains(&device_id), "{listed}");

    let mut meter = TestDevice::connect(server.mqtt_port(), &device_id, Some(&secret))
        .await
        .expect("connect");
    let first = reading(30);
    assert_eq!(meter.send(first.clone()).await.expect("ack").stored, 1);
    drop(meter);

    let status = server.terminate().await.expect("stop");
    assert!(status.success());
    let pid_file = data_dir.join("postgres/postmaster.pid");
    assert!(
        !pid_file.exists(),
        "the private PostgreSQL stopped with the server"
    );

    server.restart().await.expect("second run");
    let mut meter = TestDevice::connect(server.mqtt_port(), &device_id, Some(&secret))
        .await
        .expect("connect again");
    let ack = meter.send(first).await.expect("ack");
    assert_eq!(
        (ack.stored, ack.duplicates),
        (0, 1),
        "the first run's reading is still there"
    );
    assert_eq!(meter.send(reading(10)).await.expect("ack").stored, 1);
    server.terminate().await.expect("stop");
}

#[tokio::test]
async fn help_documents_every_setting() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(chronicle_binary().expect("binary"))
            .args(args)
            .output()
            .expect("runs");
        assert!(out.status.success(), "chronicle {args:?} failed");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let serve = run(&["serve", "--help"]);
    for env in [
        "CHRONICLE_CONFIG",
        "CHRONICLE_DATABASE_URL",
        "CHRONICLE_DATA_DIR",
        "CHRONICLE_POSTGRES_BIN_DIR",
        "CHRONICLE_POSTGRES_PORT",
        "CHRONICLE_DATABASE_MAX_CONNECTIONS",
        "CHRONICLE_TIMESCALE",
        "CHRONICLE_HTTP_ADDR",
        "CHRONICLE_MQTT_URL",
        "CHRONICLE_MQTT_LISTEN",
        "CHRONICLE_MQTT_CLIENT_ID",
        "CHRONICLE_MQTT_SHARED_GROUP",
        "CHRONICLE_MQTT_MAX_PACKET_BYTES",
        "CHRONICLE_MQTT_INFLIGHT",
        "CHRONICLE_MQTT_KEEP_ALIVE",
        "CHRONICLE_MAX_MESSAGE_BYTES",
        "CHRONICLE_MAX_READINGS_PER_MESSAGE",
        "CHRONICLE_MAX_FUTURE_SKEW_SECONDS",
        "CHRONICLE_BATCH_MAX_MESSAGES",
        "CHRONICLE_BATCH_LINGER_MS",
        "CHRONICLE_FOLLOWUP_WORK",
        "CHRONICLE_SHUTDOWN_GRACE_SECONDS",
    ] {
        assert!(
            serve.contains(env),
            "`chronicle serve --help` does not mention {env}"
        );
    }
    let top = run(&["--help"]);
    for command in ["serve", "migrate", "patient", "device"] {
        assert!(
            top.contains(command),
            "`chronicle --help` does not list {command}"
        );
    }
    let device = run(&["device", "add", "--help"]);
    assert!(device.contains("--kind") && device.contains("--patient"));
}

#[tokio::test]
async fn a_missing_postgresql_is_reported_with_what_to_do() {
    let dir = traversable_tempdir().expect("data dir");
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .env_remove("CHRONICLE_DATABASE_URL")
        .args(["--data-dir"])
        .arg(dir.path())
        .args([
            "--postgres-bin-dir",
            "/nonexistent/postgresql/bin",
            "migrate",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL server binaries"), "{stderr}");
    assert!(
        stderr.contains("CHRONICLE_DATABASE_URL"),
        "says how to use an existing server instead: {stderr}"
    );
}

#[tokio::test]
async fn a_configuration_file_is_read_and_flags_override_it() {
    let dir = traversable_tempdir().expect("dir");
    let config = dir.path().join("chronicle.toml");
    std::fs::write(
        &config,
        "data_dir = \"/nonexistent/should-be-overridden\"\ntimescale = \"off\"\n",
    )
    .expect("write");
    let db = chronicle_tests::TestDatabase::create()
        .await
        .expect("database");
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .arg("--config")
        .arg(&config)
        .args(["--database-url", &db.url, "migrate"])
        .output()
        .await
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&config, "datadir = \"x\"\n").expect("write");
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .arg("--config")
        .arg(&config)
        .args(["--database-url", &db.url, "migrate"])
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting(s)"));
}

/// The private PostgreSQL preloads TimescaleDB when it is installed beside it, so
/// `--timescale required` works on the embedded defaults; without it the tables stay plain
/// and the command says so.
#[tokio::test]
async fn the_private_postgresql_preloads_timescaledb_when_it_is_installed() {
    let installed = std::env::var_os("CHRONICLE_TEST_POSTGRES_BIN_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|bin| bin.parent().map(|root| root.join("lib/timescaledb.so")))
        .is_some_and(|lib| lib.is_file());
    let dir = traversable_tempdir().expect("data dir");
    let mode = if installed { "required" } else { "auto" };
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--timescale", mode, "migrate"])
        .env_remove("CHRONICLE_DATABASE_URL")
        .output()
        .await
        .expect("chronicle migrate runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    if installed {
        assert!(log.contains("TimescaleDB hypertables in use"), "{log}");
    } else {
        assert!(log.contains("TimescaleDB not used"), "{log}");
    }
}
