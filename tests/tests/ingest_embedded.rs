//! End to end through the embedded broker: publish → validated → stored → ack received.

use chronicle_tests::{ChronicleServer, ServerOptions, TestDatabase, TestDevice};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

struct Setup {
    db: TestDatabase,
    server: ChronicleServer,
    patient: String,
}

async fn setup() -> Setup {
    let db = TestDatabase::create().await.expect("test database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("server starts");
    let patient = server.add_patient("Ada Test").await.expect("patient");
    Setup {
        db,
        server,
        patient,
    }
}

impl Setup {
    async fn device(&self, kind: &str) -> TestDevice {
        let (id, secret) = self
            .server
            .add_device(&self.patient, kind)
            .await
            .expect("device");
        TestDevice::connect(self.server.mqtt_port(), &id, Some(&secret))
            .await
            .expect("device connects")
    }
}

fn minutes_ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

#[tokio::test]
async fn single_readings_in_both_units_are_stored_and_acknowledged() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;

    let ack = cgm
        .send(json!({"type": "glucose", "value": 112, "unit": "mg/dL", "measured_at": minutes_ago(10), "message_id": "m1"}).to_string())
        .await
        .expect("ack");
    assert_eq!((ack.stored, ack.duplicates, ack.rejected), (1, 0, 0));
    assert_eq!(ack.message_id.as_deref(), Some("m1"));

    let ack = cgm
        .send(json!({"type": "glucose", "value": 6.2, "unit": "mmol/L", "measured_at": minutes_ago(5)}).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);

    let rows: Vec<(f64, Option<f64>, String, String)> = sqlx::query_as(
        "SELECT value_mg_dl, original_value, original_unit, source FROM glucose_readings ORDER BY measured_at",
    )
    .fetch_all(&s.db.pool)
    .await
    .expect("query");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        (112.0, Some(112.0), "mg/dL".to_owned(), "cgm".to_owned())
    );
    assert!(
        (rows[1].0 - 6.2 * 18.01559).abs() <= 0.0005,
        "normalized to mg/dL, kept to the thousandth: {}",
        rows[1].0
    );
    assert_eq!((rows[1].1, rows[1].2.as_str()), (Some(6.2), "mmol/L"));

    let mut cuff = s.device("bp").await;
    let ack = cuff
        .send(json!({"type": "blood_pressure", "systolic": 142, "diastolic": 91, "pulse": 77, "measured_at": minutes_ago(1)}).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);
    let bp: (i16, i16, Option<i16>) =
        sqlx::query_as("SELECT systolic, diastolic, pulse FROM blood_pressure_readings")
            .fetch_one(&s.db.pool)
            .await
            .expect("bp row");
    assert_eq!(bp, (142, 91, Some(77)));
}

#[tokio::test]
async fn a_batch_of_a_thousand_readings_in_one_message() {
    let s = setup().await;
    let mut meter = s.device("meter").await;
    let start = chrono::Utc::now() - chrono::Duration::days(6);
    let readings: Vec<_> = (0..1500)
        .map(|i| {
            json!({"type": "glucose", "value": 80 + (i % 120), "unit": "mg/dL",
                   "measured_at": (start + chrono::Duration::minutes(5 * i)).to_rfc3339(), "id": i})
        })
        .collect();
    let payload = json!({"message_id": "backlog-1", "readings": readings}).to_string();
    assert!(
        payload.len() > 10 * 1024,
        "larger than rumqttc's default packet limit"
    );
    let ack = meter.send(payload.clone()).await.expect("ack");
    assert_eq!((ack.stored, ack.duplicates, ack.rejected), (1500, 0, 0));
    assert_eq!(s.db.count("glucose_readings").await, 1500);

    // The same backlog again: every reading is a duplicate, nothing new is stored.
    let ack = meter.send(payload).await.expect("ack");
    assert_eq!((ack.stored, ack.duplicates, ack.rejected), (0, 1500, 0));
    assert_eq!(s.db.count("glucose_readings").await, 1500);
}

/// A large batch's glucose readings reach the table by COPY, a small batch's through the batch
/// statement: both store the same rows.
#[tokio::test]
async fn a_large_batch_is_stored_exactly_as_small_ones() {
    let s = setup().await;
    let mut large = s.device("meter").await;
    let mut small = s.device("meter").await;
    let start = chrono::Utc::now() - chrono::Duration::days(2);
    let readings: Vec<_> = (0..600i64)
        .map(|i| {
            let at = start + chrono::Duration::minutes(3 * i) + chrono::Duration::milliseconds(i);
            let offset = chrono::FixedOffset::east_opt(((i % 5) as i32 - 2) * 3600 + 1800)
                .expect("offset within a day");
            let measured_at = at.with_timezone(&offset).to_rfc3339();
            match i % 6 {
                0 => json!({"type": "glucose", "value": "LO", "unit": "mg/dL", "measured_at": measured_at}),
                1 => json!({"type": "glucose", "value": "HI", "unit": "mmol/L", "measured_at": measured_at, "id": format!("r\t{i}")}),
                2 | 3 => json!({"type": "glucose", "value": 3.1 + (i % 40) as f64 * 0.37, "unit": "mmol/L", "measured_at": measured_at, "id": i}),
                _ => json!({"type": "glucose", "value": 54 + i % 300, "unit": "mg/dL", "measured_at": measured_at}),
            }
        })
        .collect();
    let ack = large
        .send(json!({"readings": readings}).to_string())
        .await
        .expect("ack");
    assert_eq!((ack.stored, ack.duplicates, ack.rejected), (600, 0, 0));
    for part in readings.chunks(100) {
        let ack = small
            .send(json!({"readings": part}).to_string())
            .await
            .expect("ack");
        assert_eq!((ack.stored, ack.duplicates, ack.rejected), (100, 0, 0));
    }

    type Row = (
        i16,
        i16,
        chrono::DateTime<chrono::Utc>,
        i32,
        Option<f64>,
        Option<String>,
        i32,
    );
    let rows_of = |device: &str| {
        sqlx::query_as::<_, Row>(
            "SELECT s.utc_offset_minutes, s.codes, s.measured_at, s.value_milli_mg_dl,
                    s.original_value, s.device_reading_id, s.received_after_s
             FROM glucose_samples s JOIN devices d ON d.key = s.device_key
             WHERE d.id = $1 ORDER BY s.measured_at",
        )
        .bind(device.to_owned())
        .fetch_all(&s.db.pool)
    };
    let by_copy = rows_of(large.device_id()).await.expect("rows");
    let by_statement = rows_of(small.device_id()).await.expect("rows");
    assert_eq!(by_copy.len(), 600);
    assert_eq!(by_statement.len(), 600);
    for (copied, stated) in by_copy.iter().zip(&by_statement) {
        let (received_copied, received_stated) = (copied.6, stated.6);
        assert_eq!(
            (
                &copied.0, &copied.1, &copied.2, &copied.3, &copied.4, &copied.5
            ),
            (
                &stated.0, &stated.1, &stated.2, &stated.3, &stated.4, &stated.5
            ),
        );
        // Both received a moment ago, a few seconds apart at most.
        let age = (chrono::Utc::now() - copied.2).num_seconds();
        assert!(
            (received_copied - received_stated).abs() <= 5
                && (i64::from(received_copied) - age).abs() <= 60,
            "received after {received_copied} s by COPY, {received_stated} s by the statement, \
             measured {age} s ago"
        );
    }
    // Both paths took every kind of value: LO, HI, mmol/L kept as sent, reading ids.
    let codes: std::collections::HashSet<i16> = by_copy.iter().map(|r| r.1).collect();
    assert!(codes.len() >= 4, "codes {codes:?}");
    assert!(by_copy.iter().any(|r| r.4.is_some() && r.5.is_some()));
}

#[tokio::test]
async fn duplicates_within_and_across_messages_are_stored_once() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    let at = minutes_ago(20);
    let reading = json!({"type": "glucose", "value": 99, "unit": "mg/dL", "measured_at": at});
    let ack = cgm
        .send(json!({"readings": [reading, reading]}).to_string())
        .await
        .expect("ack");
    assert_eq!((ack.stored, ack.duplicates), (1, 1));
    let ack = cgm.send(reading.to_string()).await.expect("ack");
    assert_eq!((ack.stored, ack.duplicates), (0, 1));
    assert_eq!(s.db.count("glucose_readings").await, 1);
    // Old and new in one message: each is told apart.
    let later = json!({"type": "glucose", "value": 101, "unit": "mg/dL",
                       "measured_at": minutes_ago(15)});
    let ack = cgm
        .send(json!({"readings": [later, reading]}).to_string())
        .await
        .expect("ack");
    assert_eq!((ack.stored, ack.duplicates), (1, 1));
    assert_eq!(s.db.count("glucose_readings").await, 2);
}

#[tokio::test]
async fn every_rejection_reason_is_acknowledged_and_recorded() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    let t = minutes_ago(30);
    let future = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let cases: Vec<(String, &str)> = vec![
        ("{not json".to_owned(), "malformed_json"),
        (json!({"readings": []}).to_string(), "empty_batch"),
        (json!({"type": "glucose", "unit": "mg/dL", "measured_at": t}).to_string(), "missing_field"),
        (json!({"type": "glucose", "value": [1], "unit": "mg/dL", "measured_at": t}).to_string(), "invalid_field"),
        (json!({"type": "ketones", "value": 0.4, "unit": "mmol/L", "measured_at": t}).to_string(), "unknown_type"),
        (json!({"type": "glucose", "value": 90, "unit": "mg/L", "measured_at": t}).to_string(), "unknown_unit"),
        (json!({"type": "glucose", "value": 1200, "unit": "mg/dL", "measured_at": t}).to_string(), "out_of_range"),
        (json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "2026-03-01 08:00"}).to_string(), "invalid_timestamp"),
        (json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": future}).to_string(), "future_timestamp"),
        (json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "1900-01-01T00:00:00Z"}).to_string(), "stale_timestamp"),
        (json!({"type": "blood_pressure", "systolic": 120, "diastolic": 80, "measured_at": t}).to_string(), "wrong_device_kind"),
        ("x".repeat(1024 * 1024 + 1), "message_too_large"),
        (json!({"readings": vec![json!({}); 5001]}).to_string(), "too_many_readings"),
    ];
    for (payload, reason) in &cases {
        let ack = cgm.send(payload.clone()).await.expect("ack");
        assert_eq!(ack.stored, 0, "{reason}");
        assert_eq!(ack.rejections.len(), 1, "{reason}: {ack:?}");
        assert_eq!(ack.rejections[0].reason, *reason);
        assert!(!ack.rejections[0].detail.is_empty());
    }
    let recorded: Vec<(String, String)> =
        sqlx::query_as("SELECT reason, raw FROM rejected_readings ORDER BY id")
            .fetch_all(&s.db.pool)
            .await
            .expect("rows");
    assert_eq!(
        recorded.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        cases.iter().map(|(_, r)| *r).collect::<Vec<_>>()
    );
    assert!(
        recorded.iter().all(|(_, raw)| !raw.is_empty()),
        "the raw payload is kept"
    );
    assert_eq!(s.db.count("glucose_readings").await, 0);

    // The server is still healthy after all that.
    let ready = reqwest::get(s.server.http_url("/readyz"))
        .await
        .expect("readyz");
    assert!(ready.status().is_success());
}

#[tokio::test]
async fn unknown_and_revoked_devices_are_refused_and_nothing_is_stored() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    let reading =
        json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": minutes_ago(3)})
            .to_string();
    let stranger = TestDevice::connect(s.server.mqtt_port(), "dev_doesnotexist", None).await;
    assert!(
        stranger.is_err(),
        "the embedded broker refuses a device it does not know"
    );
    // A registered device publishing under an id that is not its own is refused by the
    // broker, and the attempt is recorded against the publisher.
    cgm.publish_to(
        "chronicle/v1/devices/dev_doesnotexist/readings",
        reading.clone(),
    )
    .await
    .expect("publish");
    let rejected = chronicle_tests::eventually(Duration::from_secs(20), "not-authorized refusal", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_readings WHERE reason = 'not_authorized' AND device_id = 'dev_doesnotexist' AND publisher = $1")
            .bind(cgm.device_id())
            .fetch_one(&s.db.pool).await.ok()?;
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(rejected, 1);

    // Revoke the device: its connection is dropped, its credentials stop working, and
    // nothing it sent is stored.
    s.server
        .admin(&["device", "revoke", cgm.device_id()])
        .await
        .expect("revoke");
    let code = cgm
        .refused_within(Duration::from_secs(5))
        .await
        .expect("revoked device dropped and refused");
    assert_eq!(code, rumqttc::ConnectReturnCode::BadUserNamePassword);
    assert_eq!(s.db.count("glucose_readings").await, 0);
    let (id, _) = s
        .server
        .add_device(&s.patient, "cgm")
        .await
        .expect("device");
    assert!(
        TestDevice::connect(s.server.mqtt_port(), &id, Some("wrong-secret"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mosquitto_pub_with_the_documented_example_gets_an_ack() {
    let s = setup().await;
    let (id, secret) = s
        .server
        .add_device(&s.patient, "cgm")
        .await
        .expect("device");
    let port = s.server.mqtt_port().to_string();
    // Line-buffered (coreutils' stdbuf), so its lines arrive as it prints them.
    let mut acks = tokio::process::Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            &id,
            "-P",
            &secret,
            "-i",
            &format!("{id}.sub"),
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "30",
            // Debug lines tell when the subscription is in place.
            "-d",
        ])
        .args(["-t", &format!("chronicle/v1/devices/{id}/acks")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (apt-get install mosquitto-clients)");
    let mut lines = tokio::io::BufReader::new(acks.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("mosquitto_sub output") {
            if line.contains("SUBACK") {
                return;
            }
        }
        panic!("mosquitto_sub ended before its SUBACK");
    })
    .await
    .expect("mosquitto_sub subscribed within 30 s");
    // The example from docs/protocol.md, with a current timestamp.
    let example = json!({"type": "glucose", "value": 5.8, "unit": "mmol/L", "source": "cgm", "measured_at": minutes_ago(2), "id": "seq-1842"});
    let status = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            &id,
            "-P",
            &secret,
            "-q",
            "1",
        ])
        .args([
            "-t",
            &format!("chronicle/v1/devices/{id}/readings"),
            "-m",
            &example.to_string(),
        ])
        .status()
        .await
        .expect("mosquitto_pub runs");
    assert!(status.success());
    let mut ack = None;
    while let Some(line) = lines.next_line().await.expect("mosquitto_sub output") {
        if line.starts_with('{') {
            ack = Some(serde_json::from_str::<serde_json::Value>(&line).expect("ack is JSON"));
        }
    }
    assert!(acks.wait().await.expect("mosquitto_sub exits").success());
    let ack = ack.expect("mosquitto_sub printed the ack");
    assert_eq!(ack["stored"], 1, "ack: {ack}");
    assert_eq!(s.db.count("glucose_readings").await, 1);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    cgm.send(
        json!({"type": "glucose", "value": 150, "unit": "mg/dL", "measured_at": minutes_ago(1)})
            .to_string(),
    )
    .await
    .expect("ack");
    cgm.send("nope").await.expect("ack");
    let health = reqwest::get(s.server.http_url("/healthz"))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let ready: serde_json::Value = reqwest::get(s.server.http_url("/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready,
        json!({"ready": true, "database": "ok", "broker": "connected"})
    );
    let metrics = reqwest::get(s.server.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expected in [
        "chronicle_ingest_messages_received_total 2",
        "chronicle_ingest_readings_stored_total{kind=\"glucose\"} 1",
        "chronicle_ingest_readings_rejected_total{reason=\"malformed_json\"} 1",
        "chronicle_ingest_commit_seconds_count",
        "chronicle_ingest_lag_seconds_count",
        "chronicle_ingest_batch_messages_count",
        "chronicle_ingest_broker_connected 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
    // Unknown API paths are JSON errors (other paths belong to the dashboard's router).
    let missing = reqwest::get(s.server.http_url("/v1/nope"))
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json error body");
    assert_eq!(body["code"], "not_found");
}

/// The reading tables are TimescaleDB hypertables exactly when the leg asks for TimescaleDB
/// (scripts/test's second leg), plain tables otherwise: the same tests pass on both.
#[tokio::test]
async fn reading_tables_are_hypertables_on_the_timescaledb_leg_only() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    let ack = cgm
        .send(
            json!({"type": "glucose", "value": 140, "unit": "mg/dL", "measured_at": minutes_ago(1)})
                .to_string(),
        )
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);
    let loaded: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(&s.db.pool)
    .await
    .expect("query");
    if std::env::var("CHRONICLE_TEST_TIMESCALE").as_deref() == Ok("required") {
        assert!(loaded, "the TimescaleDB leg runs on TimescaleDB");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT hypertable_name::text FROM timescaledb_information.hypertables
             WHERE compression_enabled ORDER BY 1",
        )
        .fetch_all(&s.db.pool)
        .await
        .expect("query");
        assert_eq!(tables, ["blood_pressure_samples", "glucose_samples"]);
    } else {
        assert!(
            !loaded,
            "plain PostgreSQL unless the leg asks for TimescaleDB"
        );
    }
}

/// docs/ARCHITECTURE.md, "Following a message": with the ingest and broker at debug level and
/// JSON logs, every step of one message carries its device id and (once read) its message id.
#[tokio::test]
async fn a_message_can_be_followed_through_the_logs_by_its_id() {
    let db = TestDatabase::create().await.expect("test database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        env: vec![
            (
                "CHRONICLE_LOG".into(),
                "info,chronicle_ingest=debug,chronicle_broker=debug".into(),
            ),
            ("CHRONICLE_LOG_FORMAT".into(), "json".into()),
        ],
        ..Default::default()
    })
    .await
    .expect("server starts");
    let patient = server.add_patient("Ada Trace").await.expect("patient");
    let (id, secret) = server.add_device(&patient, "cgm").await.expect("device");
    let mut cgm = TestDevice::connect(server.mqtt_port(), &id, Some(&secret))
        .await
        .expect("device connects");
    let ack = cgm
        .send(json!({"type": "glucose", "value": 98, "unit": "mg/dL", "measured_at": minutes_ago(3), "message_id": "trace-me-7"}).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);

    let steps = chronicle_tests::eventually(Duration::from_secs(10), "the ack's log line", || {
        let log = server.log();
        let id = id.clone();
        async move {
            let lines: Vec<serde_json::Value> = log
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .filter(|line: &serde_json::Value| line["fields"]["device_id"] == id.as_str())
                .collect();
            let steps: Vec<String> = lines
                .iter()
                .map(|l| l["fields"]["message"].as_str().unwrap_or("").to_owned())
                .collect();
            steps.iter().any(|s| s == "ack published").then_some(lines)
        }
    })
    .await;
    let names: Vec<&str> = steps
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "message received",
            "message validated",
            "message committed",
            "ack published"
        ],
        "{steps:#?}"
    );
    for step in &steps[1..] {
        assert_eq!(step["fields"]["message_id"], "trace-me-7", "{step}");
    }
    let committed = &steps[2];
    assert_eq!(committed["fields"]["stored"], 1);
    assert_eq!(committed["fields"]["patient_id"], patient.as_str());
    assert!(
        committed["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "ingest_batch")),
        "the commit runs in its batch's span: {committed}"
    );
    assert!(
        steps[0]["spans"].as_array().is_some_and(|spans| spans
            .iter()
            .any(|s| s["name"] == "mqtt_connection" && s["identity"] == id.as_str())),
        "the receipt is in the device's connection span: {}",
        steps[0]
    );
}

/// The ack of `send`, which must come within 10 s.
async fn within<T>(send: impl std::future::Future<Output = anyhow::Result<T>>) -> T {
    tokio::time::timeout(Duration::from_secs(10), send)
        .await
        .expect("acknowledged within 10 s")
        .expect("ack")
}

/// PostgreSQL's text cannot hold a NUL character, and JSON strings can: a message id, a
/// reading id or a note with one is refused with a reason, and never stops the batch it came
/// in, or the ingest, from storing everyone else's readings (such a batch could never commit,
/// and the ingest retried it for ever).
#[tokio::test]
async fn text_with_a_nul_character_stops_nothing() {
    let s = setup().await;
    let mut cgm = s.device("cgm").await;
    let ack = within(
        cgm.send(
            json!({"message_id": "m\u{0}1", "readings": [
                {"type": "glucose", "value": 101, "unit": "mg/dL", "measured_at": minutes_ago(9)},
            ]})
            .to_string(),
        ),
    )
    .await;
    assert_eq!((ack.stored, ack.rejected), (0, 1), "{ack:?}");
    assert_eq!(ack.rejections[0].reason, "malformed_json");

    let ack = within(cgm.send(
        json!({"message_id": "m2", "readings": [
            {"type": "glucose", "value": 101, "unit": "mg/dL", "measured_at": minutes_ago(9), "id": "r\u{0}1"},
            {"type": "note", "note": "n\u{0}", "measured_at": minutes_ago(9)},
            {"type": "glucose", "value": 102, "unit": "mg/dL", "measured_at": minutes_ago(8)},
        ]})
        .to_string(),
    ))
    .await;
    assert_eq!((ack.stored, ack.rejected), (1, 2), "{ack:?}");
    assert!(
        ack.rejections.iter().all(|r| r.reason == "invalid_field"),
        "{ack:?}"
    );
    let ack = within(cgm.send(
        json!({"type": "glucose", "value": 103, "unit": "mg/dL", "measured_at": minutes_ago(7)})
            .to_string(),
    ))
    .await;
    assert_eq!(ack.stored, 1, "the ingest goes on");
    assert_eq!(s.db.count("glucose_readings").await, 2);
    assert_eq!(s.db.count("rejected_readings").await, 3);
}

/// A message the database refuses although it passed validation (here a value a constraint
/// added for the test forbids) is refused on its own, `not_storable`, and recorded; every
/// other message of its batch is stored, and the ingest goes on.
#[tokio::test]
async fn a_message_the_database_refuses_is_refused_alone() {
    let s = setup().await;
    sqlx::query(
        "ALTER TABLE glucose_samples ADD CONSTRAINT refuses_95 CHECK (value_milli_mg_dl <> 95000)",
    )
    .execute(&s.db.pool)
    .await
    .expect("constraint");
    let mut cgm = s.device("cgm").await;
    let messages = 200;
    let poisoned = 150;
    for i in 0..messages {
        let value = if i == poisoned { 95 } else { 100 + i % 100 };
        cgm.publish(
            json!({"type": "glucose", "value": value, "unit": "mg/dL",
                   "measured_at": minutes_ago(300 - i64::from(i)), "message_id": format!("m{i}")})
            .to_string(),
        )
        .await
        .expect("published");
    }
    for i in 0..messages {
        let ack = cgm
            .next_ack(Duration::from_secs(15))
            .await
            .expect("every message answered");
        assert_eq!(ack.message_id.as_deref(), Some(format!("m{i}").as_str()));
        if i == poisoned {
            assert_eq!((ack.stored, ack.rejected), (0, 1), "{ack:?}");
            assert_eq!(ack.rejections[0].reason, "not_storable");
        } else {
            assert_eq!((ack.stored, ack.rejected), (1, 0), "{ack:?}");
        }
    }
    assert_eq!(
        s.db.count("glucose_readings").await,
        i64::from(messages) - 1
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rejected_readings WHERE reason = 'not_storable' AND message_id = $1",
    )
    .bind(format!("m{poisoned}"))
    .fetch_one(&s.db.pool)
    .await
    .expect("refusal");
    assert_eq!(recorded, 1);
    // Published together, the message was written with others first, and the batch split.
    assert!(
        s.server.log().contains("writing each half"),
        "the refused message was never in a batch with others"
    );
    let ack = within(
        cgm.send(
            json!({"type": "glucose", "value": 99, "unit": "mg/dL", "measured_at": minutes_ago(5)})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(ack.stored, 1, "the ingest goes on");
}
