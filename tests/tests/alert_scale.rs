//! Two `chronicle serve` processes on one shared subscription (Mosquitto): the readings of
//! one patient are split between them and committed in any order, yet every alert is
//! raised once, with the same count as if one server had received everything in order. And a
//! server started with `--followup-work false` leaves the evaluation to another one. And two
//! alert engines that take turns on a patient, each holding its readings between
//! evaluations, raise exactly what one engine reading all stored data raises. And an engine
//! that starts behind on many patients takes larger claims yet evaluates each patient once.
//! And an evaluation reads a patient's new readings, not their device's whole history.

use chronicle_alerts::{ReadingWindows, Scope, evaluate_patients};
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::{AccessAction, Principal, Role};
use chronicle_storage::Store;
use chronicle_storage::population::PopulationDevice;
use chronicle_storage::records::Erasure;
use chronicle_tests::clinic::{Clinic, glucose, population_with_a_reading_each};
use chronicle_tests::{
    ChronicleServer, Mosquitto, ServerOptions, TestDatabase, TestDevice, eventually, rows_read,
    rows_read_since, secured_mosquitto_options,
};
use chrono::{Duration, SubsecRound, Utc};
use std::collections::BTreeMap;
use std::time::Duration as StdDuration;
use tokio::task::JoinSet;
use uuid::Uuid;

const PATIENTS: usize = 6;

#[tokio::test]
async fn two_servers_on_a_shared_subscription_raise_each_alert_once() {
    let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
    let db = TestDatabase::create().await.expect("database");
    let shared = async |account: &str| ServerOptions {
        mqtt_shared_group: Some("chronicle".into()),
        ..secured_mosquitto_options(&db.url, &broker, account)
            .await
            .expect("ingest account")
    };
    let a = ChronicleServer::start(shared("alerts-a").await)
        .await
        .expect("server a");
    let b = ChronicleServer::start(shared("alerts-b").await)
        .await
        .expect("server b");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;

    // Very low twice (two episodes), and low for 15 minutes once, in readings 2 minutes apart.
    let values = [60.0, 50.0, 52.0, 58.0, 48.0, 47.0, 56.0];
    let now = Utc::now();
    let mut patients = Vec::new();
    let mut publishers = JoinSet::new();
    for i in 0..PATIENTS {
        let (patient, _) = clinic.patient(&format!("Shared {i}")).await;
        patients.push(patient);
        let credentials = clinic.device(patient, DeviceKind::Cgm).await;
        let mut device = TestDevice::connect_when_allowed(
            broker.port(),
            credentials.id.as_str(),
            &credentials.secret,
        )
        .await
        .unwrap_or_else(|e| panic!("device connects: {e:#}\nlog a:\n{}", a.log()));
        publishers.spawn(async move {
            // One message per reading, all in flight at once: the broker hands them to
            // either server.
            for (j, value) in values.iter().enumerate() {
                let at = now - Duration::minutes(12 - 2 * j as i64);
                device
                    .publish(glucose(at, *value).to_string())
                    .await
                    .expect("publish");
            }
            let mut stored = 0;
            while stored < values.len() {
                stored += device
                    .next_ack(StdDuration::from_secs(30))
                    .await
                    .expect("ack")
                    .stored;
            }
        });
    }
    while let Some(done) = publishers.join_next().await {
        done.expect("publisher");
    }
    eventually(StdDuration::from_secs(30), "alert evaluation", || async {
        (store.pending_followups("alerts").await.ok()? == 0).then_some(())
    })
    .await;

    for patient in &patients {
        let alerts: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT rule, status, trigger_count FROM alerts
             WHERE patient_id = $1 AND kind = 'alert' ORDER BY rule",
        )
        .bind(patient)
        .fetch_all(&db.pool)
        .await
        .expect("alerts");
        assert_eq!(
            alerts,
            [
                ("glucose_low".to_owned(), "open".to_owned(), 1),
                ("glucose_very_low".to_owned(), "open".to_owned(), 2),
            ],
            "patient {patient}"
        );
        // Each alert was raised once. (How many re-trigger notifications follow depends
        // on how the readings were batched, as with one server; the count does not.)
        let events = events(&db, *patient).await;
        for rule in ["glucose_low", "glucose_very_low"] {
            assert_eq!(
                events.get(&(rule.to_owned(), "opened".to_owned())),
                Some(&1),
                "patient {patient}: {events:?}"
            );
        }
        assert!(
            events
                .keys()
                .all(|(_, kind)| kind == "opened" || kind == "retriggered"),
            "patient {patient}: {events:?}"
        );
    }
    // Both servers took part: each stored some of the readings.
    for (name, server) in [("a", &a), ("b", &b)] {
        let metrics = server.metrics().await.expect("metrics");
        let stored = metrics
            .value("chronicle_ingest_readings_stored_total")
            .unwrap_or(0.0);
        assert!(
            stored > 0.0,
            "server {name} stored nothing:\n{}",
            metrics.text
        );
    }
}

/// A new patient of `clinic` with a CGM connected to the broker on `mqtt_port`.
async fn patient_with_a_cgm(clinic: &Clinic, name: &str, mqtt_port: u16) -> (Uuid, TestDevice) {
    let (patient, _) = clinic.patient(name).await;
    let credentials = clinic.device(patient, DeviceKind::Cgm).await;
    let device = TestDevice::connect(
        mqtt_port,
        credentials.id.as_str(),
        Some(&credentials.secret),
    )
    .await
    .expect("device connects");
    (patient, device)
}

async fn events(db: &TestDatabase, patient: Uuid) -> BTreeMap<(String, String), i64> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT rule, kind, count(*) FROM alert_events WHERE patient_id = $1 GROUP BY 1, 2",
    )
    .bind(patient)
    .fetch_all(&db.pool)
    .await
    .expect("events");
    rows.into_iter().map(|(r, k, n)| ((r, k), n)).collect()
}

/// An ingest-only server (`--followup-work false`) stores and acknowledges readings and
/// leaves their evaluation queued; a second server on the same database does it, once.
#[tokio::test]
async fn an_ingest_only_server_leaves_the_evaluation_to_another() {
    let db = TestDatabase::create().await.expect("database");
    let ingest_only = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        extra_args: vec!["--followup-work".into(), "false".into()],
        ..Default::default()
    })
    .await
    .expect("ingest-only server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "Ingest").await;
    let (patient, mut device) =
        patient_with_a_cgm(&clinic, "Queued", ingest_only.mqtt_port()).await;
    let ack = device
        .send(glucose(Utc::now(), 45.0).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);

    // Nothing evaluates it here: the work stays queued and no alert appears (checked once
    // more below, after a worker has done everything).
    assert_eq!(store.pending_followups("alerts").await.expect("queue"), 1);
    assert!(store.pending_trend_work().await.expect("queue") > 0);
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(alerts, 0, "an ingest-only server evaluated");

    // A worker on the same database picks the work up.
    let _worker = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("worker server");
    eventually(
        StdDuration::from_secs(30),
        "the worker's evaluation",
        || async {
            let queued = store.pending_followups("alerts").await.ok()?
                + store.pending_trend_work().await.ok()?;
            (queued == 0).then_some(())
        },
    )
    .await;
    let rules: Vec<(String, String)> = sqlx::query_as(
        "SELECT rule, status FROM alerts WHERE patient_id = $1 AND kind = 'alert' ORDER BY rule",
    )
    .bind(patient)
    .fetch_all(&db.pool)
    .await
    .expect("alerts");
    assert_eq!(
        rules,
        [("glucose_very_low".to_owned(), "open".to_owned())],
        "the very low reading raised its alert once"
    );
    // By now the ingest-only server has had every chance to evaluate: it never did.
    let metrics = reqwest::get(ingest_only.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "chronicle_alerts_evaluations_total 0"),
        "the ingest-only server evaluated: {metrics}"
    );
}

/// Two alert engines ("processes") evaluate one patient by turns, each from the readings it
/// holds between evaluations plus what was newly stored. An engine whose held readings miss
/// what the other one evaluated must read the lookback again: every evaluation raises
/// exactly the events one engine reading all stored data raises.
#[tokio::test]
async fn engines_that_take_turns_on_a_patient_evaluate_like_one() {
    let db = TestDatabase::create().await.expect("database");
    // Only the ingest here: the test drives the two engines itself.
    let server = chronicle_tests::TestApp::launch(&db, &["--followup-work", "false"])
        .await
        .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let (patient, mut device) = patient_with_a_cgm(&clinic, "Turns", server.mqtt_port()).await;

    let a = ReadingWindows::new(10);
    let b = ReadingWindows::new(10);
    // Very low, clear (58), very low again: the second episode re-triggers the alert only
    // for an engine that sees the clear reading in between.
    let values = [60.0, 50.0, 52.0, 58.0, 48.0, 47.0, 56.0];
    let engines = [&a, &a, &b, &b, &a, &b, &a];
    let now = Utc::now();
    let mut seen = Vec::new();
    for (j, (value, engine)) in values.iter().zip(engines).enumerate() {
        let at = now - Duration::minutes(14 - 2 * j as i64);
        device
            .publish(glucose(at, *value).to_string())
            .await
            .expect("publish");
        assert_eq!(
            device
                .next_ack(StdDuration::from_secs(30))
                .await
                .expect("ack")
                .stored,
            1
        );
        let scope = Scope {
            // As stored: the device sends whole seconds.
            glucose_from: Some(at.trunc_subsecs(0)),
            ..Scope::default()
        };
        let events = evaluate_patients(&store, engine, &[(patient, scope)])
            .await
            .expect("evaluation");
        seen.extend(events.into_iter().map(|e| {
            (
                j,
                e.alert.rule.as_str().to_owned(),
                e.kind.as_str().to_owned(),
            )
        }));
    }
    let step = |j: usize, rule: &str, kind: &str| (j, rule.to_owned(), kind.to_owned());
    assert_eq!(
        seen,
        [
            step(1, "glucose_very_low", "opened"),
            step(4, "glucose_very_low", "retriggered"),
            step(5, "glucose_low", "opened"),
        ],
        "engine a at step 4 missed the clear reading engine b evaluated"
    );
    assert_eq!(a.len(), 1, "engine a holds the patient's readings");

    // Erasing the record is announced to every server, which then drops what it holds.
    let mut erasures = store.erasure_listener();
    assert_eq!(
        erasures.next().await,
        Erasure::Missed,
        "listening from now on"
    );
    let herself = Principal {
        user_id: Uuid::new_v4(),
        role: Some(Role::Patient),
        patient_id: Some(patient),
        ..Principal::default()
    };
    let actor = store
        .authorize_as_patient(&herself, patient, AccessAction::Erase)
        .await
        .expect("gate")
        .expect("acts as herself");
    store.erase(&actor).await.expect("erase");
    let heard = tokio::time::timeout(StdDuration::from_secs(10), erasures.next())
        .await
        .expect("the erasure is announced");
    assert_eq!(heard, Erasure::Patient(patient));
    a.forget(patient);
    assert!(a.is_empty(), "nothing of the erased patient is held");
}

/// A server that starts behind on many patients' current readings (queued while no engine
/// ran, so its first claim finds items waiting longer than the engine's keeping-up bound)
/// takes larger claims than it evaluates at once, and still evaluates every patient once:
/// every very low reading raises one alert, and nobody else gets one.
#[tokio::test]
async fn an_engine_behind_takes_larger_claims_and_evaluates_each_patient_once() {
    const QUEUED_PATIENTS: u64 = 1_500;
    let db = TestDatabase::create().await.expect("database");
    let store = Store::from_pool(db.pool.clone());
    store.migrate().await.expect("migrations");
    // Every seventh patient's reading is very low; the rest are in range.
    let very_low = |device: &PopulationDevice| device.patient_number.is_multiple_of(7);
    let measured_at = Utc::now().trunc_subsecs(0) - Duration::seconds(30);
    let devices = population_with_a_reading_each(
        &store,
        QUEUED_PATIENTS,
        "Behind",
        measured_at,
        |device| if very_low(device) { 45.0 } else { 120.0 },
        &[chronicle_alerts::CONSUMER],
    )
    .await;
    // Older than the engine's keeping-up bound (500 ms) when the server claims them.
    tokio::time::sleep(StdDuration::from_millis(700)).await;

    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        env: vec![(
            "CHRONICLE_LOG".into(),
            "info,chronicle_alerts::engine=debug".into(),
        )],
        ..Default::default()
    })
    .await
    .expect("server");
    eventually(
        StdDuration::from_secs(60),
        "the queue evaluated",
        || async {
            (store
                .pending_followups(chronicle_alerts::CONSUMER)
                .await
                .ok()?
                == 0)
                .then_some(())
        },
    )
    .await;

    let alerted: BTreeMap<Uuid, i64> = sqlx::query_as(
        "SELECT patient_id, count(*) FROM alerts
         WHERE kind = 'alert' AND rule = 'glucose_very_low' GROUP BY patient_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("alerts")
    .into_iter()
    .collect();
    let expected: BTreeMap<Uuid, i64> = devices
        .iter()
        .filter(|device| very_low(device))
        .map(|device| (device.patient_id, 1))
        .collect();
    assert_eq!(alerted, expected, "one very-low alert per very low patient");
    let other_alerts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE kind = 'alert' AND rule <> 'glucose_very_low'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(other_alerts, 0);

    // The engine found itself behind and claimed more than its usual 200 patients at once.
    let log = server.log();
    let largest_claim = log
        .lines()
        .filter(|line| line.contains("alert round claimed"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("patients=")?;
            rest.split_whitespace().next()?.parse::<usize>().ok()
        })
        .max();
    assert!(
        largest_claim.is_some_and(|patients| patients > 200),
        "no claim of more than 200 patients (largest {largest_claim:?}):\n{log}"
    );
}

/// The engine reads a patient's new readings by seeking to them in the index, not by walking
/// the device's whole history: with a year's worth of readings stored, evaluating the last
/// hour fetches a few dozen rows of `glucose_samples`, not tens of thousands. Counted in
/// PostgreSQL's own statistics (index and sequential tuples read, the hypertable's chunks
/// included), on a store opened as `chronicle serve` opens it (statements planned once).
#[tokio::test]
async fn an_evaluation_reads_the_new_readings_not_the_devices_history() {
    const HISTORY: i64 = 30_000;
    let db = TestDatabase::create().await.expect("database");
    let store = db.server_store(4).await.expect("store");
    // Hypertables on the TimescaleDB leg, as `serve` makes them: the history spans chunks.
    store
        .apply_timescale(&chronicle_storage::timescale::TimescaleSettings::default())
        .await
        .expect("timescale");
    let clinic = Clinic::new(&store, "North").await;
    let (patient, _) = clinic.patient("Long history").await;
    let credentials = clinic.device(patient, DeviceKind::Cgm).await;
    // Every 5 minutes for about 104 days, the newest a minute ago.
    sqlx::query(
        "INSERT INTO glucose_samples (device_key, utc_offset_minutes, codes, measured_at,
             value_milli_mg_dl, received_after_s)
         SELECT d.key, 0, 0, date_trunc('second', now()) - interval '1 minute'
                - k * interval '5 minutes', 120000, 5
         FROM devices d, generate_series(0, $2 - 1) AS k
         WHERE d.id = $1",
    )
    .bind(credentials.id.as_str())
    .bind(HISTORY)
    .execute(&db.pool)
    .await
    .expect("history");
    let before = rows_read(&db.pool, "glucose_samples").await;

    let windows = ReadingWindows::new(10);
    let scope = Scope {
        glucose_from: Some(Utc::now() - Duration::hours(1)),
        ..Scope::default()
    };
    evaluate_patients(&store, &windows, &[(patient, scope)])
        .await
        .expect("evaluation");
    let read = rows_read_since(&db.pool, "glucose_samples", before).await;
    assert!(
        read < 1_000,
        "evaluating an hour of readings read {read} rows of a {HISTORY}-reading history"
    );
}

/// The `Scope` of claimed follow-up items, as the engine builds it: where the glucose rules
/// look from, and the writes that stored the readings.
fn scope_of_items(items: &[chronicle_storage::Followup]) -> Scope {
    Scope {
        glucose_from: items.iter().map(|i| i.first_measured_at).min(),
        glucose_writes: Some(
            items
                .iter()
                .map(|i| (i.first_measured_at, i.written_by))
                .collect(),
        ),
        ..Scope::default()
    }
}

/// An engine behind its queue reads ahead of it: evaluating its oldest item, it reads and
/// evaluates every reading stored since. The follow-up work of those readings is then done:
/// evaluating it reads and raises nothing. A reading stored after that evaluation is read and
/// evaluated as usual.
#[tokio::test]
async fn an_engine_does_not_evaluate_again_what_it_read_ahead_of_its_queue() {
    const COMMITS: usize = 30;
    let db = TestDatabase::create().await.expect("database");
    // Only the ingest here: the test claims and evaluates itself.
    let server = chronicle_tests::TestApp::launch(&db, &["--followup-work", "false"])
        .await
        .expect("server");
    let store = db.server_store(2).await.expect("store");
    let clinic = Clinic::new(&store, "North").await;
    let (patient, mut device) = patient_with_a_cgm(&clinic, "Ahead", server.mqtt_port()).await;
    let start = Utc::now().trunc_subsecs(0) - Duration::minutes(COMMITS as i64 + 5);
    let mut publish = async |minute: i64, value: f64| {
        device
            .publish(glucose(start + Duration::minutes(minute), value).to_string())
            .await
            .expect("publish");
        let ack = device
            .next_ack(StdDuration::from_secs(30))
            .await
            .expect("ack");
        assert_eq!(ack.stored, 1);
    };
    // One commit each; very low from the twentieth on.
    for i in 0..COMMITS {
        publish(i as i64, if i < 20 { 110.0 } else { 45.0 }).await;
    }

    let windows = ReadingWindows::new(10);
    let before_ahead = rows_read(&db.pool, "glucose_samples").await;
    let claim = store
        .claim_followups(chronicle_alerts::CONSUMER, 1)
        .await
        .expect("claim")
        .expect("the oldest item");
    assert_eq!(claim.items.len(), 1);
    let events = evaluate_patients(&store, &windows, &[(patient, scope_of_items(&claim.items))])
        .await
        .expect("evaluation");
    claim.complete().await.expect("complete");
    let raised: Vec<&str> = events.iter().map(|e| e.alert.rule.as_str()).collect();
    assert!(
        raised.contains(&"glucose_very_low"),
        "the oldest item's evaluation read and evaluated every reading stored since: {raised:?}"
    );

    let read_ahead = rows_read_since(&db.pool, "glucose_samples", before_ahead).await;
    assert!(read_ahead >= COMMITS as i64, "{read_ahead} rows read ahead");
    let before = before_ahead + read_ahead;
    let claim = store
        .claim_followups(chronicle_alerts::CONSUMER, 100)
        .await
        .expect("claim")
        .expect("the rest");
    assert_eq!(claim.items.len(), COMMITS - 1);
    let events = evaluate_patients(&store, &windows, &[(patient, scope_of_items(&claim.items))])
        .await
        .expect("evaluation");
    claim.complete().await.expect("complete");
    assert!(events.is_empty(), "{events:?}");

    // Stored after the read-ahead: read and evaluated.
    publish(COMMITS as i64, 120.0).await;
    let claim = store
        .claim_followups(chronicle_alerts::CONSUMER, 100)
        .await
        .expect("claim")
        .expect("the new reading's item");
    evaluate_patients(&store, &windows, &[(patient, scope_of_items(&claim.items))])
        .await
        .expect("evaluation");
    claim.complete().await.expect("complete");
    let read = rows_read_since(&db.pool, "glucose_samples", before).await;
    // The newest held reading and the new one, against the 29 readings of the items the
    // read-ahead covered and the new one's had they been read again.
    assert!(
        read <= 10,
        "the items evaluated ahead were read again: {read} rows read"
    );
    assert_eq!(
        store
            .pending_followups(chronicle_alerts::CONSUMER)
            .await
            .expect("pending"),
        0
    );
}
