//! Every alert rule end to end: readings published over MQTT to the real server, alerts read
//! back over the HTTP API. Also: a meter syncing yesterday's backlog raises no live alarm but
//! records historical events; duplicates change nothing; the lifecycle (acknowledge,
//! re-trigger, resolve by hand and automatically).

use chronicle_domain::DeviceKind;
use chronicle_storage::Store;
use chronicle_tests::api::ApiClient;
use chronicle_tests::clinic::{Clinic, PASSWORD, batch, glucose, glucose_hi, pressure};
use chronicle_tests::{TestApp, TestDatabase, TestDevice, eventually};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

struct World {
    db: TestDatabase,
    server: TestApp,
    store: Store,
    clinic: Clinic,
    api: ApiClient,
    token: String,
}

async fn world() -> World {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let token = api.login(&clinic.clinician_email, PASSWORD).await;
    World {
        db,
        server,
        store,
        clinic,
        api,
        token,
    }
}

impl World {
    async fn device(&self, patient: Uuid, kind: DeviceKind) -> TestDevice {
        let credentials = self.clinic.device(patient, kind).await;
        TestDevice::connect(
            self.server.mqtt_port(),
            credentials.id.as_str(),
            Some(&credentials.secret),
        )
        .await
        .expect("device connects")
    }

    /// Waits until the engine has evaluated everything stored.
    async fn settled(&self) {
        eventually(
            std::time::Duration::from_secs(30),
            "alert evaluation",
            || async { (self.store.pending_followups("alerts").await.ok()? == 0).then_some(()) },
        )
        .await;
    }

    /// The patient's alerts (and historical events), newest first.
    async fn alerts_of(&self, patient: Uuid, query: &str) -> Vec<Value> {
        self.api
            .get_ok(
                &self.token,
                &format!("/v1/patients/{patient}/alerts?{query}"),
            )
            .await["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    async fn events(&self, patient: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM alert_events WHERE patient_id = $1")
            .bind(patient)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - Duration::minutes(minutes)
}

/// Sends readings in one message; all must be stored.
async fn send(device: &mut TestDevice, readings: Vec<Value>) {
    let ack = device.send(batch(&readings)).await.expect("ack");
    assert_eq!(ack.stored, readings.len(), "{ack:?}");
}

/// (rule, severity) of each live alert.
fn rules(alerts: &[Value]) -> BTreeSet<(String, String)> {
    alerts
        .iter()
        .filter(|a| a["kind"] == "alert")
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or_default().to_owned(),
                a["severity"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_rule_raises_exactly_its_alert_through_mqtt() {
    let w = world().await;
    // One patient per case, so the rules cannot interfere: (name, device kind, readings,
    // expected (rule, severity)).
    let every_5_min = |values: &[f64]| -> Vec<Value> {
        let n = values.len() as i64;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| glucose(ago(5 * (n - 1 - i as i64)), *v))
            .collect()
    };
    let stage2_week: Vec<Value> = (0..11)
        .map(|i| pressure(ago(60 * 12 * (11 - i)), 140, 90))
        .chain([pressure(ago(0), 140, 90)])
        .collect();
    type Case<'a> = (&'a str, DeviceKind, Vec<Value>, &'a [(&'a str, &'a str)]);
    let cases: Vec<Case> = vec![
        (
            "very low",
            DeviceKind::Cgm,
            every_5_min(&[110.0, 50.0]),
            &[("glucose_very_low", "urgent")],
        ),
        (
            "low for 15 minutes",
            DeviceKind::Cgm,
            every_5_min(&[80.0, 68.0, 66.0, 65.0]),
            &[("glucose_low", "warning")],
        ),
        (
            "one low meter reading",
            DeviceKind::Meter,
            vec![glucose(ago(1), 65.0)],
            &[("glucose_low", "warning")],
        ),
        (
            "predicted low",
            DeviceKind::Cgm,
            every_5_min(&[100.0, 90.0, 80.0, 70.0, 70.0]),
            &[("glucose_predicted_low", "warning")],
        ),
        (
            "very high for an hour",
            DeviceKind::Cgm,
            every_5_min(&[260.0; 12]),
            &[("glucose_very_high", "warning")],
        ),
        (
            "a CGM HI",
            DeviceKind::Cgm,
            vec![glucose(ago(5), 300.0), glucose_hi(ago(0))],
            &[("glucose_very_high", "urgent")],
        ),
        (
            "rapid fall",
            DeviceKind::Cgm,
            every_5_min(&[160.0, 140.0, 120.0]),
            &[("glucose_rapid_fall", "warning")],
        ),
        (
            "crisis",
            DeviceKind::Bp,
            vec![pressure(ago(1), 185, 100)],
            &[("bp_crisis", "urgent")],
        ),
        (
            "low pressure",
            DeviceKind::Bp,
            vec![pressure(ago(1), 85, 55)],
            &[("bp_low", "warning")],
        ),
        (
            "stage 2 at home",
            DeviceKind::Bp,
            stage2_week,
            &[("bp_stage2_trend", "info")],
        ),
        (
            "a CGM silent for 40 minutes",
            DeviceKind::Cgm,
            vec![glucose(ago(45), 120.0), glucose(ago(40), 120.0)],
            &[("no_data", "info")],
        ),
        (
            "in range",
            DeviceKind::Cgm,
            every_5_min(&[120.0, 118.0, 121.0, 119.0]),
            &[],
        ),
    ];
    let mut patients = BTreeMap::new();
    for (name, kind, readings, expected) in &cases {
        let (patient, _) = w.clinic.patient(name).await;
        let mut device = w.device(patient, *kind).await;
        let ack = device.send(batch(readings)).await.expect("ack");
        assert_eq!(ack.stored, readings.len(), "{name}: {ack:?}");
        patients.insert(patient, (*name, *expected));
    }
    w.settled().await;
    // no_data comes from the scheduler (every 5 s).
    let all = eventually(
        std::time::Duration::from_secs(20),
        "every expected alert",
        || async {
            let body = w.api.get_ok(&w.token, "/v1/alerts?limit=1000").await;
            let items = body["items"].as_array()?.clone();
            let expected: usize = cases.iter().map(|c| c.3.len()).sum();
            (items.len() >= expected).then_some(items)
        },
    )
    .await;
    for (patient, (name, expected)) in &patients {
        let mine: Vec<Value> = all
            .iter()
            .filter(|a| a["patient_id"] == patient.to_string())
            .cloned()
            .collect();
        let want: BTreeSet<(String, String)> = expected
            .iter()
            .map(|(r, s)| (r.to_string(), s.to_string()))
            .collect();
        assert_eq!(rules(&mine), want, "{name}: {mine:#?}");
        for alert in &mine {
            assert_eq!(alert["status"], "open", "{name}");
            assert_eq!(alert["trigger_count"], 1, "{name}");
        }
    }
    // The engine's metrics count what it wrote.
    let metrics = w.server.metrics().await.expect("metrics");
    let opened = metrics
        .value("chronicle_alerts_events_total{kind=\"opened\"}")
        .unwrap_or(0.0);
    assert_eq!(opened, 11.0, "{}", metrics.text);
    // The evidence says why.
    let very_low = all
        .iter()
        .find(|a| a["rule"] == "glucose_very_low")
        .expect("very low");
    assert_eq!(very_low["evidence"]["value_mg_dl"], 50.0);
    let predicted = all
        .iter()
        .find(|a| a["rule"] == "glucose_predicted_low")
        .expect("predicted");
    assert!(
        predicted["evidence"]["forecast_mg_dl"]
            .as_f64()
            .expect("forecast")
            < 55.0
    );
}

#[tokio::test]
async fn a_late_backlog_records_history_but_raises_no_live_alarm_and_duplicates_change_nothing() {
    let w = world().await;
    let (patient, _) = w.clinic.patient("Backlog").await;
    let mut meter = w.device(patient, DeviceKind::Meter).await;
    // Yesterday's readings, synced now, with a hypo at 03:00.
    let yesterday = Utc::now() - Duration::days(1);
    let backlog = batch(&[
        glucose(yesterday - Duration::hours(6), 110.0),
        glucose(yesterday, 48.0),
        glucose(yesterday + Duration::hours(4), 130.0),
    ]);
    assert_eq!(meter.send(backlog.clone()).await.expect("ack").stored, 3);
    w.settled().await;
    let recorded = w.alerts_of(patient, "").await;
    assert!(
        recorded
            .iter()
            .all(|a| a["kind"] == "historical" && a["status"].is_null()),
        "no live alarm from a backlog: {recorded:#?}"
    );
    let historical: BTreeSet<String> = recorded
        .iter()
        .map(|a| a["rule"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        historical,
        ["glucose_low", "glucose_very_low"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert!(
        w.api.get_ok(&w.token, "/v1/alerts").await["items"]
            .as_array()
            .expect("items")
            .is_empty(),
        "the care team's list of live alerts stays empty"
    );

    // A reading an hour after the hypo, synced later: its evaluation looks back over the hypo
    // and finds the episodes already recorded, which stay exactly as they were.
    let recorded = w.alerts_of(patient, "kind=historical").await;
    let an_hour_later = batch(&[glucose(yesterday + Duration::hours(1), 120.0)]);
    assert_eq!(meter.send(an_hour_later).await.expect("ack").stored, 1);
    w.settled().await;
    assert_eq!(
        w.alerts_of(patient, "kind=historical").await,
        recorded,
        "an episode found again is not rewritten"
    );

    // The same backlog again: all duplicates, nothing changes.
    let events_before = w.events(patient).await;
    let ack = meter.send(backlog).await.expect("ack");
    assert_eq!((ack.stored, ack.duplicates), (0, 3));
    // A live hypo, then its duplicate.
    let now = glucose(ago(0), 50.0).to_string();
    assert_eq!(meter.send(now.clone()).await.expect("ack").stored, 1);
    w.settled().await;
    let live = eventually(
        std::time::Duration::from_secs(10),
        "the live alarm",
        || async {
            let alerts = w.alerts_of(patient, "kind=alert").await;
            (!alerts.is_empty()).then_some(alerts)
        },
    )
    .await;
    assert_eq!(
        rules(&live).len(),
        2,
        "very low and low (one meter reading): {live:#?}"
    );
    let events_after_live = w.events(patient).await;
    assert_eq!(events_after_live, events_before + 2);
    assert_eq!(meter.send(now).await.expect("ack").duplicates, 1);
    // A duplicate queues no follow-up work, so once the engine has settled it has seen all
    // there is to see.
    w.settled().await;
    assert_eq!(
        w.events(patient).await,
        events_after_live,
        "a duplicate changes nothing"
    );
    let again = w.alerts_of(patient, "kind=alert").await;
    assert_eq!(
        again
            .iter()
            .map(|a| a["trigger_count"].clone())
            .collect::<Vec<_>>(),
        vec![json!(1), json!(1)]
    );
    assert_eq!(w.alerts_of(patient, "kind=historical").await.len(), 2);
}

#[tokio::test]
async fn the_lifecycle_open_acknowledge_retrigger_resolve() {
    let w = world().await;
    let (patient, _) = w.clinic.patient("Lifecycle").await;
    let mut cgm = w.device(patient, DeviceKind::Cgm).await;
    // Every reading within the last 12 minutes: all live.
    let t0 = Utc::now() - Duration::minutes(12);
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    send(&mut cgm, vec![glucose(at(0), 50.0)]).await;
    w.settled().await;
    let alert = eventually(std::time::Duration::from_secs(10), "the alert", || async {
        w.alerts_of(patient, "kind=alert").await.into_iter().next()
    })
    .await;
    let id = alert["id"].as_str().expect("id").to_owned();
    let base = format!("/v1/patients/{patient}/alerts/{id}");

    let (status, acked) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("{base}/acknowledge"),
            Some(json!({"note": "calling the patient"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], w.clinic.clinician.to_string());
    assert_eq!(acked["acknowledgement_note"], "calling the patient");
    let (status, _) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("{base}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "acknowledged twice");

    // Clear, then very low again: the same alert re-triggers and needs attention again.
    send(&mut cgm, vec![glucose(at(2), 90.0), glucose(at(4), 52.0)]).await;
    w.settled().await;
    let alerts = w.alerts_of(patient, "kind=alert").await;
    assert_eq!(alerts.len(), 1, "one open alert per rule: {alerts:#?}");
    assert_eq!(alerts[0]["id"], id.as_str());
    assert_eq!(alerts[0]["trigger_count"], 2);
    assert_eq!(alerts[0]["status"], "open");

    let (status, resolved) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("{base}/resolve"),
            Some(json!({"note": "treated with glucose tablets"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(
        (resolved["status"].as_str(), resolved["resolution"].as_str()),
        (Some("resolved"), Some("manual"))
    );
    assert_eq!(resolved["resolution_note"], "treated with glucose tablets");
    let (status, _) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("{base}/resolve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("/v1/patients/{patient}/alerts/{}/resolve", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Automatic resolution: the care team has alerts resolve as soon as they are clear.
    let (status, targets) = w
        .api
        .get(&w.token, &format!("/v1/patients/{patient}/targets"))
        .await;
    assert_eq!(status, StatusCode::OK, "{targets}");
    let mut thresholds = targets["alert_thresholds"].clone();
    thresholds["preset"] = json!("custom");
    thresholds["timing"]["resolve_after_minutes"] = json!(0);
    let (status, changed) = w
        .api
        .call(
            Some(&w.token),
            Method::PUT,
            &format!("/v1/patients/{patient}/targets"),
            Some(json!({"alert_thresholds": thresholds})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["changed_by"], w.clinic.clinician.to_string());
    assert_eq!(changed["custom_thresholds"], true);
    // A new episode after the resolution is a new alert; it resolves once clear.
    send(&mut cgm, vec![glucose(at(6), 95.0)]).await;
    send(&mut cgm, vec![glucose(at(8), 51.0)]).await;
    w.settled().await;
    send(&mut cgm, vec![glucose(at(10), 96.0)]).await;
    w.settled().await;
    let auto = eventually(
        std::time::Duration::from_secs(15),
        "auto-resolution",
        || async {
            w.alerts_of(patient, "kind=alert")
                .await
                .into_iter()
                .find(|a| a["resolution"] == "auto")
        },
    )
    .await;
    assert_ne!(auto["id"], id.as_str());
    assert_eq!(auto["status"], "resolved");
    assert_eq!(w.alerts_of(patient, "kind=alert").await.len(), 2);
    let (_, changes) = w
        .api
        .get(&w.token, &format!("/v1/patients/{patient}/targets/changes"))
        .await;
    assert_eq!(changes.as_array().map(Vec::len), Some(1), "{changes}");
    assert_eq!(changes[0]["changed_by"], w.clinic.clinician.to_string());
    assert_eq!(
        changes[0]["alert_thresholds"]["timing"]["resolve_after_minutes"],
        0
    );
}

/// The patient's own export holds everything held about them: the alerts with the care
/// team's notes, the targets and every change of them, and the access log, beside the
/// readings. A grantee without `export` access gets none of it.
#[tokio::test]
async fn the_patients_own_export_holds_alerts_notes_targets_and_the_access_log() {
    let w = world().await;
    let (patient, _) = w.clinic.patient("Exporter").await;
    chronicle_tests::create_user(
        &w.store,
        "exporter@example.org",
        chronicle_domain::sharing::Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let mut cgm = w.device(patient, DeviceKind::Cgm).await;
    send(
        &mut cgm,
        vec![glucose(Utc::now() - Duration::minutes(2), 50.0)],
    )
    .await;
    w.settled().await;
    let alert = eventually(std::time::Duration::from_secs(10), "the alert", || async {
        w.alerts_of(patient, "kind=alert").await.into_iter().next()
    })
    .await;
    let id = alert["id"].as_str().expect("id").to_owned();
    let (status, body) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("/v1/patients/{patient}/alerts/{id}/acknowledge"),
            Some(json!({"note": "called, eating now"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let targets = w
        .api
        .get_ok(&w.token, &format!("/v1/patients/{patient}/targets"))
        .await;
    let mut thresholds = targets["alert_thresholds"].clone();
    thresholds["preset"] = json!("custom");
    thresholds["timing"]["resolve_after_minutes"] = json!(0);
    let (status, body) = w
        .api
        .call(
            Some(&w.token),
            Method::PUT,
            &format!("/v1/patients/{patient}/targets"),
            Some(json!({"alert_thresholds": thresholds})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let export_path = format!("/v1/patients/{patient}/export/json");
    // The clinician's care grant holds no export access.
    let (status, _) = w.api.get(&w.token, &export_path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let own = w.api.login("exporter@example.org", PASSWORD).await;
    let record = w.api.get_ok(&own, &export_path).await;
    assert_eq!(record["format"], "chronicle-export/1");
    assert_eq!(record["patient"]["id"], patient.to_string());
    assert_eq!(record["glucose"].as_array().map(Vec::len), Some(1));
    let alerts = record["alerts"].as_array().expect("alerts");
    assert!(
        alerts.iter().any(|a| a["id"] == id.as_str()
            && a["acknowledgement_note"] == "called, eating now"
            && a["acknowledged_by"] == w.clinic.clinician.to_string()),
        "{alerts:?}"
    );
    assert_eq!(record["targets"]["custom_thresholds"], true, "{record}");
    assert!(
        record["target_changes"]
            .as_array()
            .is_some_and(|changes| changes
                .iter()
                .any(|c| c["changed_by"] == w.clinic.clinician.to_string())),
        "{record}"
    );
    let actions: BTreeSet<&str> = record["access_log"]
        .as_array()
        .expect("access log")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["acknowledge_alert", "update_targets", "export_json"] {
        assert!(
            actions.contains(action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(record["grants"].as_array().map(Vec::len), Some(1));
}

/// Acknowledging is per audience, and each caregiver's is their own: a caregiver who receives
/// the patient's alerts acknowledges for themselves only — another caregiver, the patient and
/// the care team still see the alert unacknowledged on their side — and only the care team
/// resolves.
#[tokio::test]
async fn a_caregivers_acknowledgement_is_their_own() {
    use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
    let w = world().await;
    let (patient, _) = w.clinic.patient("Audiences").await;
    chronicle_tests::create_user(
        &w.store,
        "audiences@example.org",
        Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let mut carers = Vec::new();
    for email in ["carer@example.org", "other-carer@example.org"] {
        let carer =
            chronicle_tests::create_user(&w.store, email, Role::Caregiver, None, PASSWORD).await;
        w.store
            .create_grant(&chronicle_storage::sharing::NewGrant {
                patient_id: patient,
                grantee: Grantee::User(carer),
                categories: [DataCategory::Glucose].into_iter().collect(),
                access: [Access::ReceiveAlerts].into_iter().collect(),
                purpose: Purpose::Caregiving,
                data_since: None,
                expires_at: None,
                created_by: None,
            })
            .await
            .expect("caregiving grant");
        carers.push(carer);
    }
    let carer = carers[0];
    let carer_token = w.api.login("carer@example.org", PASSWORD).await;
    let other_carer_token = w.api.login("other-carer@example.org", PASSWORD).await;
    let patient_token = w.api.login("audiences@example.org", PASSWORD).await;
    let mut cgm = w.device(patient, DeviceKind::Cgm).await;
    send(
        &mut cgm,
        vec![glucose(Utc::now() - Duration::minutes(2), 48.0)],
    )
    .await;
    w.settled().await;
    let alert = eventually(std::time::Duration::from_secs(10), "the alert", || async {
        w.alerts_of(patient, "kind=alert").await.into_iter().next()
    })
    .await;
    let base = format!(
        "/v1/patients/{patient}/alerts/{}",
        alert["id"].as_str().expect("id")
    );

    let (status, seen) = w
        .api
        .call(
            Some(&carer_token),
            Method::POST,
            &format!("{base}/acknowledge"),
            Some(json!({"note": "texted her"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(
        seen["status"], "open",
        "the care team's state is untouched: {seen}"
    );
    assert!(seen["acknowledged_by"].is_null(), "{seen}");
    assert_eq!(seen["audience_acknowledgement"]["audience"], "caregiving");
    assert_eq!(seen["audience_acknowledgement"]["note"], "texted her");
    assert_eq!(
        seen["audience_acknowledgement"]["acknowledged_by"],
        carer.to_string()
    );
    let (status, _) = w
        .api
        .call(
            Some(&carer_token),
            Method::POST,
            &format!("{base}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "once per caregiver");
    let alerts_url = format!("/v1/patients/{patient}/alerts?kind=alert");
    let other_view = w.api.get_ok(&other_carer_token, &alerts_url).await;
    assert!(
        other_view["items"][0]["audience_acknowledgement"].is_null(),
        "another caregiver's side is untouched: {other_view}"
    );
    let patient_view = w.api.get_ok(&patient_token, &alerts_url).await;
    assert!(
        patient_view["items"][0]["audience_acknowledgement"].is_null(),
        "the patient's side is untouched: {patient_view}"
    );
    // The other caregiver acknowledges for themselves, then the patient for the family.
    let (status, other) = w
        .api
        .call(
            Some(&other_carer_token),
            Method::POST,
            &format!("{base}/acknowledge"),
            Some(json!({"note": "on my way"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other["audience_acknowledgement"]["note"], "on my way");
    assert_eq!(
        other["audience_acknowledgement"]["acknowledged_by"],
        carers[1].to_string()
    );
    let (status, own) = w
        .api
        .call(
            Some(&patient_token),
            Method::POST,
            &format!("{base}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["audience_acknowledgement"]["audience"], "patient");
    assert!(own["audience_acknowledgement"]["note"].is_null(), "{own}");
    assert_eq!(own["status"], "open", "{own}");
    let first_view = w.api.get_ok(&carer_token, &alerts_url).await;
    assert_eq!(
        first_view["items"][0]["audience_acknowledgement"]["note"], "texted her",
        "each caregiver keeps their own: {first_view}"
    );
    let (status, _) = w
        .api
        .call(
            Some(&carer_token),
            Method::POST,
            &format!("{base}/resolve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the care team resolves");

    // The care team still sees an open alert and takes it on; the caregiver then sees both.
    let care_view = w.alerts_of(patient, "kind=alert").await;
    assert_eq!(care_view[0]["status"], "open");
    assert!(care_view[0]["audience_acknowledgement"].is_null());
    let (status, acked) = w
        .api
        .call(
            Some(&w.token),
            Method::POST,
            &format!("{base}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let carer_view = w
        .api
        .get_ok(
            &carer_token,
            &format!("/v1/patients/{patient}/alerts?kind=alert"),
        )
        .await;
    let item = &carer_view["items"][0];
    assert_eq!(item["status"], "acknowledged", "{item}");
    assert_eq!(item["acknowledged_by"], w.clinic.clinician.to_string());
    assert_eq!(item["audience_acknowledgement"]["note"], "texted her");
}
