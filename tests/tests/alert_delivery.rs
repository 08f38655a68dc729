//! Delivering alerts: the live stream (SSE) receives new alerts, resumes with
//! `Last-Event-ID`, holds back snoozed alarms and stops delivering the moment the grant is
//! revoked; webhooks are signed (checked by a real local receiver), retried after a failure
//! and logged; alerts, events and snoozes survive a restart.

use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::Role;
use chronicle_storage::Store;
use chronicle_tests::api::{ApiClient, create_user};
use chronicle_tests::clinic::{Clinic, PASSWORD, batch, glucose};
use chronicle_tests::server::traversable_tempdir;
use chronicle_tests::sse::AlertStream;
use chronicle_tests::webhook_receiver::SignedReceiver;
use chronicle_tests::{
    ChronicleServer, ServerOptions, ServerUnderTest, TestApp, TestDatabase, TestDevice, eventually,
};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration as StdDuration;
use uuid::Uuid;

async fn server(db: &TestDatabase) -> TestApp {
    // The tests' webhook receivers listen on loopback, which only the operator's allow-list
    // opens (webhook_safety.rs tests the refusals).
    TestApp::launch(db, &["--webhook-allow", "127.0.0.1"])
        .await
        .expect("server")
}

async fn device(server: &impl ServerUnderTest, clinic: &Clinic, patient: Uuid) -> TestDevice {
    let credentials = clinic.device(patient, DeviceKind::Cgm).await;
    TestDevice::connect(
        server.mqtt_port(),
        credentials.id.as_str(),
        Some(&credentials.secret),
    )
    .await
    .expect("device connects")
}

/// Sends readings measured `minutes_ago` (one per value, a minute apart, oldest first).
async fn send(cgm: &mut TestDevice, minutes_ago: i64, values: &[f64]) {
    let readings: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| glucose(Utc::now() - Duration::minutes(minutes_ago - i as i64), *v))
        .collect();
    let ack = cgm.send(batch(&readings)).await.expect("ack");
    assert_eq!(ack.stored, values.len(), "{ack:?}");
}

async fn events_of(db: &TestDatabase, patient: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM alert_events WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

async fn next_alert(stream: &mut AlertStream) -> Value {
    let event = stream
        .next(StdDuration::from_secs(15))
        .await
        .expect("stream readable")
        .expect("an event in time");
    assert_eq!(event.event, "alert");
    assert_eq!(
        event.id,
        event.data["event_id"].as_i64(),
        "SSE id is the event id"
    );
    event.data
}

#[tokio::test]
async fn the_stream_delivers_resumes_and_stops_the_moment_a_grant_is_revoked() {
    let db = TestDatabase::create().await.expect("database");
    let server = server(&db).await;
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let token = api.login(&clinic.clinician_email, PASSWORD).await;
    let (revoked, revoked_grant) = clinic.patient("Revoked").await;
    let (snoozed, _) = clinic.patient("Snoozed").await;
    let (control, _) = clinic.patient("Control").await;
    let mut revoked_cgm = device(&server, &clinic, revoked).await;
    let mut snoozed_cgm = device(&server, &clinic, snoozed).await;
    let mut control_cgm = device(&server, &clinic, control).await;

    // A new alert arrives on the stream.
    let mut stream = AlertStream::open(&api, &token, None).await.expect("stream");
    send(&mut revoked_cgm, 10, &[50.0]).await;
    let opened = next_alert(&mut stream).await;
    assert_eq!(opened["type"], "opened");
    assert_eq!(opened["alert"]["rule"], "glucose_very_low");
    assert_eq!(opened["alert"]["patient_id"], revoked.to_string());
    let opened_id = opened["event_id"].as_i64().expect("id");

    // Missed while disconnected: delivered on resuming with Last-Event-ID.
    drop(stream);
    send(&mut revoked_cgm, 8, &[90.0, 49.0]).await;
    eventually(StdDuration::from_secs(10), "the re-trigger", || async {
        (events_of(&db, revoked).await == 2).then_some(())
    })
    .await;
    let mut stream = AlertStream::open(&api, &token, Some(opened_id))
        .await
        .expect("stream");
    let missed = next_alert(&mut stream).await;
    assert_eq!(missed["type"], "retriggered");
    assert_eq!(missed["alert"]["trigger_count"], 2);
    assert!(missed["event_id"].as_i64() > Some(opened_id));
    let delivered_reads: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'receive_alert'
             AND outcome = 'allowed' AND actor_id = $2",
    )
    .bind(revoked)
    .bind(clinic.clinician)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(
        delivered_reads, 2,
        "every delivered event is in the patient's access log"
    );

    // Snoozed by this user, and revoked by the patient: neither reaches the stream, while
    // the control patient's alert, raised after both, does.
    let (status, body) = api
        .call(
            Some(&token),
            Method::POST,
            &format!("/v1/patients/{snoozed}/alerts/snooze"),
            Some(json!({"minutes": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    store
        .revoke_grant(revoked, revoked_grant)
        .await
        .expect("revoke")
        .expect("grant");
    send(&mut revoked_cgm, 6, &[95.0, 48.0]).await;
    send(&mut snoozed_cgm, 6, &[45.0]).await;
    eventually(
        StdDuration::from_secs(10),
        "both events written",
        || async {
            (events_of(&db, revoked).await == 3 && events_of(&db, snoozed).await == 1).then_some(())
        },
    )
    .await;
    send(&mut control_cgm, 5, &[47.0]).await;
    let next = next_alert(&mut stream).await;
    assert_eq!(
        next["alert"]["patient_id"],
        control.to_string(),
        "the revoked and the snoozed patients' events were held back: {next}"
    );
    assert!(
        stream
            .drain(StdDuration::from_millis(1500))
            .await
            .expect("stream")
            .is_empty()
    );
    // The revoked patient's alerts are no longer listed either.
    let (status, _) = api
        .get(&token, &format!("/v1/patients/{revoked}/alerts"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = api.get_ok(&token, "/v1/alerts").await;
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|a| a["patient_id"] != revoked.to_string()),
        "{listed}"
    );
    // The patient still receives their own alerts, resuming from the start.
    create_user(
        &store,
        "revoked@example.org",
        Role::Patient,
        Some(revoked),
        PASSWORD,
    )
    .await;
    let own = api.login("revoked@example.org", PASSWORD).await;
    let mut own_stream = AlertStream::open(&api, &own, Some(0))
        .await
        .expect("stream");
    let kinds: Vec<String> = own_stream
        .drain(StdDuration::from_secs(2))
        .await
        .expect("stream")
        .iter()
        .map(|e| e.data["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["opened", "retriggered", "retriggered"]);
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_logged_and_only_for_granted_organizations() {
    // Fails the first request, then checks every signature itself.
    let (receiver, url) = SignedReceiver::start("/hook", "", 1).await;

    let db = TestDatabase::create().await.expect("database");
    let server = server(&db).await;
    let store = Store::from_pool(db.pool.clone());
    let north = Clinic::new(&store, "North").await;
    let south = Clinic::new(&store, "South").await;
    let api = ApiClient::new(&server);
    let mut hooks = Vec::new();
    for clinic in [&north, &south] {
        let email = format!("admin@{}.example", clinic.organization);
        let admin = create_user(&store, &email, Role::Admin, None, PASSWORD).await;
        store
            .add_organization_member(clinic.organization, admin)
            .await
            .expect("member");
        let token = api.login(&email, PASSWORD).await;
        let path = format!("/v1/organizations/{}/webhooks", clinic.organization);
        let (status, created) = api
            .call(
                Some(&token),
                Method::POST,
                &path,
                Some(json!({"url": url, "secret": "a shared secret of some length"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["secret"], "a shared secret of some length");
        hooks.push((
            token,
            created["webhook"]["id"].as_str().expect("id").to_owned(),
        ));
    }
    // Another organization's administrator cannot see North's webhooks.
    let (status, _) = api
        .get(
            &hooks[1].0,
            &format!("/v1/organizations/{}/webhooks", north.organization),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    *receiver.secret.lock().expect("lock") = "a shared secret of some length".into();

    // A patient of North (grant to North's care team) has a very low.
    let (patient, grant) = north.patient("Webhook").await;
    let mut cgm = device(&server, &north, patient).await;
    send(&mut cgm, 5, &[49.0]).await;
    let delivered = eventually(
        StdDuration::from_secs(20),
        "a verified delivery",
        || async {
            receiver
                .received
                .lock()
                .expect("lock")
                .iter()
                .find(|(valid, _)| *valid)
                .map(|(_, body)| body.clone())
        },
    )
    .await;
    assert_eq!(delivered["type"], "alert.opened");
    assert_eq!(delivered["alert"]["rule"], "glucose_very_low");
    assert_eq!(delivered["alert"]["patient_id"], patient.to_string());
    assert!(
        receiver
            .received
            .lock()
            .expect("lock")
            .iter()
            .all(|(valid, _)| *valid),
        "every request carried a valid signature"
    );

    let log_path =
        |org: Uuid, hook: &str| format!("/v1/organizations/{org}/webhooks/{hook}/deliveries");
    // The receiver answered; the server records the outcome right after.
    let north_log = log_path(north.organization, &hooks[0].1);
    let log = eventually(
        StdDuration::from_secs(10),
        "the delivery recorded",
        || async {
            let log = api.get_ok(&hooks[0].0, &north_log).await;
            let recorded = log.as_array()?.first()?["status"] != "pending";
            recorded.then_some(log)
        },
    )
    .await;
    let deliveries = log.as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{log}");
    assert_eq!(deliveries[0]["status"], "delivered");
    let codes: Vec<Value> = deliveries[0]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!(500), json!(200)],
        "a retry after the failure: {log}"
    );
    let south_log = api
        .get_ok(&hooks[1].0, &log_path(south.organization, &hooks[1].1))
        .await;
    assert_eq!(south_log, json!([]), "South holds no grant of this patient");
    let webhook_reads: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'webhook_alert'
             AND outcome = 'allowed' AND actor_id = $2",
    )
    .bind(patient)
    .bind(north.organization)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(
        webhook_reads, 2,
        "each attempt asked the gate and was logged"
    );

    // Revoked: nothing more goes out.
    store
        .revoke_grant(patient, grant)
        .await
        .expect("revoke")
        .expect("grant");
    let events_before = events_of(&db, patient).await;
    send(&mut cgm, 3, &[95.0, 47.0]).await;
    eventually(StdDuration::from_secs(10), "the re-trigger", || async {
        (events_of(&db, patient).await > events_before).then_some(())
    })
    .await;
    // Deliveries are queued in the transaction that writes the event, so with the event
    // visible, anything queued for it would be too.
    let log = api
        .get_ok(&hooks[0].0, &log_path(north.organization, &hooks[0].1))
        .await;
    assert_eq!(
        log.as_array().map(Vec::len),
        Some(1),
        "nothing queued after revocation: {log}"
    );
    assert_eq!(
        receiver.received.lock().expect("lock").len(),
        1,
        "only the first event was ever accepted"
    );
}

#[tokio::test]
async fn alerts_events_and_snoozes_survive_a_restart() {
    let db = TestDatabase::create().await.expect("database");
    let dir = traversable_tempdir().expect("dir");
    let mut server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let token = api.login(&clinic.clinician_email, PASSWORD).await;
    let (patient, _) = clinic.patient("Restart").await;
    let mut cgm = device(&server, &clinic, patient).await;
    send(&mut cgm, 10, &[50.0]).await;
    let alerts_path = format!("/v1/patients/{patient}/alerts?kind=alert");
    let before = eventually(StdDuration::from_secs(10), "the alert", || async {
        let body = api.get_ok(&token, &alerts_path).await;
        body["items"].as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await;
    let (status, _) = api
        .call(
            Some(&token),
            Method::POST,
            &format!("/v1/patients/{patient}/alerts/snooze"),
            Some(json!({"rule": "glucose_low", "minutes": 120})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let status = server.terminate().await.expect("stop");
    assert!(status.success(), "{status}");
    cgm.disconnect().await;
    server.restart().await.expect("restart");

    let after = api.get_ok(&token, &alerts_path).await;
    assert_eq!(
        after["items"].as_array(),
        Some(&before),
        "the alert is still there"
    );
    let snoozes = api.get_ok(&token, "/v1/alerts/snoozes").await;
    assert_eq!(snoozes.as_array().map(Vec::len), Some(1), "{snoozes}");
    assert_eq!(snoozes[0]["rule"], "glucose_low");
    // The event stream resumes across the restart.
    let mut stream = AlertStream::open(&api, &token, Some(0))
        .await
        .expect("stream");
    let first = next_alert(&mut stream).await;
    assert_eq!(first["type"], "opened");
    // The engine picks up where it was: the same alert re-triggers, no second one opens.
    let mut cgm = device(&server, &clinic, patient).await;
    send(&mut cgm, 5, &[90.0, 48.0]).await;
    let again = next_alert(&mut stream).await;
    assert_eq!(again["type"], "retriggered");
    assert_eq!(again["alert"]["id"], before[0]["id"]);
}
