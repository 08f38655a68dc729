//! Resilience end to end, with Mosquitto as the external broker (as in a deployment): the
//! ingest stopped, restarted, crashed, shut down under load, run twice on a shared
//! subscription, and its database restarted under load. Nothing is lost; nothing is stored
//! twice.

use chronicle_embedded::{PrivatePostgres, PrivatePostgresConfig};
use chronicle_tests::server::{sim_binary, traversable_tempdir};
use chronicle_tests::{
    ChronicleServer, Mosquitto, ServerOptions, TestDatabase, TestDevice, eventually,
    secured_mosquitto_options,
};
use serde_json::json;
use std::time::Duration;
use tokio::task::JoinSet;

/// Registered devices connected to Mosquitto with their own credentials.
async fn devices(server: &ChronicleServer, broker: &Mosquitto, count: usize) -> Vec<TestDevice> {
    let patient = server.add_patient("Load Test").await.expect("patient");
    let mut out = Vec::new();
    for _ in 0..count {
        let (id, secret) = server.add_device(&patient, "cgm").await.expect("device");
        out.push(
            TestDevice::connect_when_allowed(broker.port(), &id, &secret)
                .await
                .expect("device connects"),
        );
    }
    out
}

fn reading(i: usize) -> String {
    let at = chrono::Utc::now() - chrono::Duration::days(2) + chrono::Duration::seconds(i as i64);
    json!({"type": "glucose", "value": 70 + (i % 200), "unit": "mg/dL", "measured_at": at.to_rfc3339(), "id": i, "message_id": format!("m{i}")}).to_string()
}

/// Totals of the acks a device received.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Totals {
    /// Distinct messages answered (a redelivered one may be answered twice).
    answered: usize,
    acks: usize,
    stored: usize,
    duplicates: usize,
    /// Duplicates answered to a message the ingest did not know to be delivered again.
    duplicates_not_redelivered: usize,
    rejected: usize,
}

/// Each device publishes `per_device` single-reading messages, `pause` apart, then waits
/// until every one was answered (or `deadline` passes). Returns the summed ack totals.
async fn publish_all(
    devices: Vec<TestDevice>,
    per_device: usize,
    pause: Duration,
    deadline: Duration,
) -> Totals {
    let mut tasks = JoinSet::new();
    for mut device in devices {
        tasks.spawn(async move {
            for i in 0..per_device {
                device.publish(reading(i)).await.expect("publish");
                tokio::time::sleep(pause).await;
            }
            let mut totals = Totals::default();
            let mut answered = std::collections::HashSet::new();
            let end = tokio::time::Instant::now() + deadline;
            // Redelivered messages may be answered twice (stored, then duplicate), so wait
            // until every message is answered rather than for a count of acks.
            while answered.len() < per_device && tokio::time::Instant::now() < end {
                if let Ok(ack) = device.next_ack(Duration::from_secs(1)).await {
                    answered.insert(ack.message_id.clone());
                    totals.answered = answered.len();
                    totals.acks += 1;
                    totals.stored += ack.stored;
                    totals.duplicates += ack.duplicates;
                    if !ack.redelivered {
                        totals.duplicates_not_redelivered += ack.duplicates;
                    }
                    totals.rejected += ack.rejected;
                }
            }
            totals
        });
    }
    let mut sum = Totals::default();
    while let Some(result) = tasks.join_next().await {
        let t = result.expect("publisher task");
        sum.answered += t.answered;
        sum.acks += t.acks;
        sum.stored += t.stored;
        sum.duplicates += t.duplicates;
        sum.duplicates_not_redelivered += t.duplicates_not_redelivered;
        sum.rejected += t.rejected;
    }
    sum
}

/// Waits until the load has stored some readings (so what follows happens under load) and
/// returns how many.
async fn under_load(pool: &sqlx::PgPool) -> i64 {
    eventually(
        Duration::from_secs(30),
        "readings stored under load",
        || async {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM glucose_readings")
                .fetch_one(pool)
                .await
                .ok()?;
            (stored >= 50).then_some(stored)
        },
    )
    .await
}

/// Chronicle against Mosquitto as docs/security.md configures it, the ingest logging in as
/// `account`.
async fn mosquitto_options(db: &TestDatabase, broker: &Mosquitto, account: &str) -> ServerOptions {
    secured_mosquitto_options(&db.url, broker, account)
        .await
        .expect("ingest account")
}

#[tokio::test]
async fn a_reading_published_while_the_ingest_is_down_is_stored_once_after_restart() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let mut server =
        ChronicleServer::start(mosquitto_options(&db, &broker, "ingest-restart").await)
            .await
            .expect("server");
    let mut device = devices(&server, &broker, 1).await.remove(0);
    assert_eq!(device.send(reading(1)).await.expect("ack").stored, 1);

    let status = server.terminate().await.expect("graceful stop");
    assert!(status.success(), "exit status {status}");
    device
        .publish(reading(2))
        .await
        .expect("publish while the ingest is down");
    // No process that could store it is running, so this holds at once.
    assert_eq!(
        db.count("glucose_readings").await,
        1,
        "nothing can be stored while the ingest is down"
    );

    server.restart().await.expect("restart");
    let ack = device
        .next_ack(Duration::from_secs(30))
        .await
        .expect("ack after restart");
    assert_eq!((ack.stored, ack.duplicates), (1, 0));
    assert_eq!(db.count("glucose_readings").await, 2);
    // No second answer: the redelivered message was stored once and acknowledged.
    assert!(device.next_ack(Duration::from_secs(2)).await.is_err());
}

/// After an outage the broker may send its whole queue at once (Mosquitto before 2.0.14
/// releases a window of queued messages for every PUBACK), so the broker's answers to the
/// ingest's device acks wait behind the backlog. The ingest keeps acknowledging what it
/// committed: past its window device acks go at QoS 0, every message is stored once on the one
/// connection, and every device still hears about every message.
#[tokio::test]
async fn a_backlog_larger_than_the_ingest_window_drains_on_one_connection() {
    const DEVICES: usize = 4;
    const PER_DEVICE: usize = 1500;
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let mut options = mosquitto_options(&db, &broker, "ingest-backlog").await;
    options
        .extra_args
        .extend(["--mqtt-inflight", "20"].map(String::from));
    let mut server = ChronicleServer::start(options).await.expect("server");
    let mut devices = devices(&server, &broker, DEVICES).await;
    let status = server.terminate().await.expect("graceful stop");
    assert!(status.success(), "exit status {status}");
    for device in &devices {
        for i in 0..PER_DEVICE {
            device
                .publish(reading(i))
                .await
                .expect("publish while down");
        }
    }

    server.restart().await.expect("restart");
    for device in &mut devices {
        let mut answered = std::collections::HashSet::new();
        let mut stored = 0;
        while answered.len() < PER_DEVICE {
            let ack = device
                .next_ack(Duration::from_secs(60))
                .await
                .unwrap_or_else(|_| panic!("{} of {PER_DEVICE} answered", answered.len()));
            assert_eq!(ack.duplicates, 0, "nothing was delivered twice: {ack:?}");
            stored += ack.stored;
            answered.insert(ack.message_id.clone());
        }
        assert_eq!(stored, PER_DEVICE, "{}", device.device_id());
    }
    assert_eq!(
        db.count("glucose_readings").await,
        (DEVICES * PER_DEVICE) as i64
    );
    let metrics = server.metrics().await.expect("metrics");
    let at_most_once = metrics
        .value("chronicle_ingest_device_acks_at_most_once_total")
        .unwrap_or_else(|| panic!("no QoS 0 ack counter in {}", metrics.text));
    assert!(
        at_most_once > 0.0,
        "the backlog outgrew the window of 19 device acks, so some went at QoS 0"
    );
    assert!(
        !server.log().contains("MQTT connection lost"),
        "the ingest kept its connection:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn two_servers_on_a_shared_subscription_store_every_reading_exactly_once() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let shared = async |id: &str| ServerOptions {
        mqtt_shared_group: Some("chronicle".into()),
        ..mosquitto_options(&db, &broker, id).await
    };
    let a = ChronicleServer::start(shared("ingest-a").await)
        .await
        .expect("server a");
    let b = ChronicleServer::start(shared("ingest-b").await)
        .await
        .expect("server b");
    let devices = devices(&a, &broker, 8).await;
    let totals = publish_all(
        devices,
        150,
        Duration::from_millis(2),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        totals,
        Totals {
            answered: 1200,
            acks: 1200,
            stored: 1200,
            duplicates: 0,
            duplicates_not_redelivered: 0,
            rejected: 0
        }
    );
    assert_eq!(db.count("glucose_readings").await, 1200);
    for (name, server) in [("a", &a), ("b", &b)] {
        let received = server
            .metrics()
            .await
            .expect("metrics")
            .value("chronicle_ingest_messages_received_total")
            .unwrap_or(0.0);
        assert!(received > 0.0, "server {name} took no share of the load");
    }
}

#[tokio::test]
async fn graceful_shutdown_under_load_loses_nothing_and_stores_nothing_twice() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let mut server =
        ChronicleServer::start(mosquitto_options(&db, &broker, "ingest-graceful").await)
            .await
            .expect("server");
    let devices = devices(&server, &broker, 6).await;
    let load = tokio::spawn(publish_all(
        devices,
        400,
        Duration::from_millis(5),
        Duration::from_secs(90),
    ));
    let stored_before = under_load(&db.pool).await;
    let status = server.terminate().await.expect("graceful stop");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        server.log()
    );
    assert!(stored_before > 0, "the stop happened under load");
    server.restart().await.expect("restart");
    let totals = load.await.expect("load");
    assert_eq!(totals.stored, 2400, "{totals:?}");
    // Everything taken before the stop was committed and acknowledged before exiting, so the
    // broker had nothing to deliver twice.
    assert_eq!(totals.duplicates, 0, "{totals:?}");
    assert_eq!(db.count("glucose_readings").await, 2400);
}

#[tokio::test]
async fn a_crashed_server_loses_no_acknowledged_reading() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let mut server = ChronicleServer::start(mosquitto_options(&db, &broker, "ingest-crash").await)
        .await
        .expect("server");
    let devices = devices(&server, &broker, 4).await;
    let load = tokio::spawn(publish_all(
        devices,
        300,
        Duration::from_millis(5),
        Duration::from_secs(90),
    ));
    under_load(&db.pool).await;
    server.kill().await.expect("SIGKILL");
    server.restart().await.expect("restart");
    let totals = load.await.expect("load");
    // Messages committed but not yet acknowledged at the crash come back as duplicates;
    // none is lost and none is stored twice.
    assert_eq!(totals.answered, 1200, "{totals:?}");
    // A message committed but not acknowledged to the broker at the crash is delivered again
    // and answered once more, as a duplicate.
    assert_eq!(totals.stored + totals.duplicates, totals.acks, "{totals:?}");
    // Each such duplicate says its message was delivered again, so a device (the simulator)
    // can count its reading as stored once.
    assert_eq!(totals.duplicates_not_redelivered, 0, "{totals:?}");
    assert!(totals.stored <= 1200, "{totals:?}");
    assert_eq!(totals.rejected, 0, "{totals:?}");
    assert_eq!(db.count("glucose_readings").await, 1200);
}

#[tokio::test]
async fn postgres_restarted_under_load_loses_nothing() {
    let dir = traversable_tempdir().expect("temp dir");
    let mut postgres = PrivatePostgres::start(PrivatePostgresConfig {
        data_dir: dir.path().to_path_buf(),
        port: None,
        bin_dir: std::env::var_os("CHRONICLE_TEST_POSTGRES_BIN_DIR").map(Into::into),
        database: "chronicle".into(),
        statement_statistics: false,
    })
    .await
    .expect("private PostgreSQL for this test");
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let options = secured_mosquitto_options(&postgres.database_url(), &broker, "ingest-pg-restart")
        .await
        .expect("ingest account");
    let server = ChronicleServer::start(options).await.expect("server");
    let devices = devices(&server, &broker, 4).await;
    let load = tokio::spawn(publish_all(
        devices,
        400,
        Duration::from_millis(5),
        Duration::from_secs(120),
    ));
    let pool = sqlx::PgPool::connect(&postgres.database_url())
        .await
        .expect("connect");
    under_load(&pool).await;
    pool.close().await;
    postgres.stop().await.expect("stop PostgreSQL");
    let readyz = server.http_url("/readyz");
    eventually(Duration::from_secs(30), "/readyz answering 503", || {
        let readyz = readyz.clone();
        async move {
            let status = reqwest::get(&readyz).await.ok()?.status();
            (status == 503).then_some(())
        }
    })
    .await;
    postgres.restart().await.expect("start PostgreSQL again");
    let totals = load.await.expect("load");
    assert_eq!(totals.stored, 1600, "{totals:?}; log:\n{}", server.log());
    let pool = sqlx::PgPool::connect(&postgres.database_url())
        .await
        .expect("connect");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM glucose_readings")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1600);
    eventually(Duration::from_secs(10), "ready again", || async {
        let r = reqwest::get(server.http_url("/readyz")).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    drop(server);
    pool.close().await;
    postgres.stop().await.expect("stop");
}

#[tokio::test]
async fn the_simulator_reconciles_a_load_through_two_crashes_of_the_ingest() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let mut server = ChronicleServer::start(mosquitto_options(&db, &broker, "ingest-sim").await)
        .await
        .expect("server");
    let dir = traversable_tempdir().expect("temp dir");
    let summary = dir.path().join("load.json");
    // 40 CGM wearers over 4 gateway connections, a day of readings each (some 11,500), at a
    // pace that keeps the load going through both crashes.
    let load = tokio::process::Command::new(sim_binary().expect("chronicle-sim is built"))
        .args([
            "load",
            "--patients",
            "40",
            "--connections",
            "4",
            "--days",
            "1",
            "--rate",
            "800",
            "--ack-timeout-seconds",
            "120",
            "--progress-seconds",
            "0",
            "--mqtt-port",
        ])
        .arg(broker.port().to_string())
        .arg("--database-url")
        .arg(&db.url)
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("--summary-json")
        .arg(&summary)
        .env_remove("CHRONICLE_DATABASE_URL")
        .output();
    let mut load = tokio::spawn(load);
    for crash in [500, 5000] {
        // Polled by hand so that a simulator that stops early shows its output.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while db.count("glucose_readings").await < crash {
            if load.is_finished() || tokio::time::Instant::now() > deadline {
                load.abort();
                let out = (&mut load).await.ok().and_then(Result::ok);
                panic!(
                    "no {crash} readings stored under load; the simulator said: {:?}",
                    out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill().await.expect("SIGKILL");
        server.restart().await.expect("restart");
    }
    let out = load.await.expect("load task").expect("chronicle-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary written"))
            .expect("JSON summary");
    assert_eq!(summary["differences"], 0, "{stdout}");
    // Every reading stored exactly once, and the simulator counts it so, including any
    // stored just before a crash and answered as a duplicate after the broker's redelivery.
    let readings = summary["readings"].as_i64().expect("readings sent");
    assert!(readings > 10_000, "{stdout}");
    assert_eq!(summary["stored"], readings, "{stdout}");
    // The CGMs' apps log their patients' treatments too: those are counted as readings.
    assert_eq!(
        db.count("glucose_readings").await + db.count("treatment_records").await,
        readings
    );
}
