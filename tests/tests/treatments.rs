//! Treatments end to end: published over MQTT by a real device, validated and deduplicated by
//! the ingest, refused with reasons (and recorded), and read back through the gate, page by
//! page, with every read in the patient's access log.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice, create_user};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "treatments test password";

#[tokio::test]
async fn treatments_are_stored_once_refused_with_reasons_and_read_through_the_gate() {
    let db = TestDatabase::create().await.expect("database");
    let app = TestApp::launch(&db, &[]).await.expect("server");
    let patient = app.add_patient("Tess").await.expect("patient");
    let patient_id: Uuid = patient.parse().expect("uuid");
    let (cgm_id, secret) = app.add_device(&patient, "cgm").await.expect("device");
    let mut cgm = TestDevice::connect(app.mqtt_port(), &cgm_id, Some(&secret))
        .await
        .expect("connect");

    let meal = (Utc::now() - Duration::hours(2)).to_rfc3339();
    let at = |minutes: i64| (Utc::now() - Duration::minutes(minutes)).to_rfc3339();
    let batch = json!({"message_id": "pump-sync-1", "readings": [
        // A bolus and its meal entered at the same instant are two records.
        {"type": "insulin", "delivery": "bolus", "units": 4.5, "measured_at": meal, "id": "b-1"},
        {"type": "carbohydrates", "grams": 45, "note": "lunch, \"pasta\"", "measured_at": meal},
        {"type": "insulin", "delivery": "basal", "units": 0.4, "duration_minutes": 30, "measured_at": at(100)},
        {"type": "exercise", "duration_minutes": 40, "measured_at": at(90)},
        {"type": "note", "note": "feeling shaky", "measured_at": at(80)},
        {"type": "sensor_start", "measured_at": at(70)},
        {"type": "calibration", "value": 6.1, "unit": "mmol/L", "measured_at": at(60)},
        // Not a dose: refused, the rest is stored.
        {"type": "insulin", "delivery": "bolus", "units": 250, "measured_at": at(50), "id": "b-2"},
        // Glucose travels beside treatments in the same message.
        {"type": "glucose", "value": 180, "unit": "mg/dL", "measured_at": at(50)},
    ]});
    let ack = cgm.send(batch.to_string()).await.expect("ack");
    assert_eq!(
        (ack.stored, ack.duplicates, ack.rejected),
        (8, 0, 1),
        "{ack:?}"
    );
    assert_eq!(ack.rejections[0].reason, "out_of_range");
    assert_eq!(ack.rejections[0].index, Some(7));
    assert_eq!(ack.rejections[0].id.as_deref(), Some("b-2"));
    let recorded: (String, String) =
        sqlx::query_as("SELECT reason, raw FROM rejected_readings WHERE device_reading_id = 'b-2'")
            .fetch_one(&db.pool)
            .await
            .expect("the refusal is recorded");
    assert_eq!(recorded.0, "out_of_range");
    assert!(recorded.1.contains("250"), "{}", recorded.1);

    // The same message again: every record is a duplicate, nothing is stored twice.
    let ack = cgm.send(batch.to_string()).await.expect("ack");
    assert_eq!(
        (ack.stored, ack.duplicates, ack.rejected),
        (0, 8, 1),
        "{ack:?}"
    );
    assert_eq!(db.count("treatment_samples").await, 7);

    // A cuff cannot send treatments.
    let (cuff_id, cuff_secret) = app.add_device(&patient, "bp").await.expect("device");
    let mut cuff = TestDevice::connect(app.mqtt_port(), &cuff_id, Some(&cuff_secret))
        .await
        .expect("connect");
    let ack = cuff
        .send(json!({"type": "carbohydrates", "grams": 20, "measured_at": at(5)}).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.rejections[0].reason, "wrong_device_kind", "{ack:?}");

    // The patient reads them back, two a page: every record exactly once, in time order,
    // the two records of one instant included.
    let store = app.store();
    create_user(
        store,
        "tess@example.org",
        Role::Patient,
        Some(patient_id),
        PASSWORD,
    )
    .await;
    let api = ApiClient::new(&app);
    let token = api.login("tess@example.org", PASSWORD).await;
    let mut items: Vec<Value> = Vec::new();
    let mut path = format!("/v1/patients/{patient}/treatments?limit=2");
    loop {
        let page = api.get_ok(&token, &path).await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/patients/{patient}/treatments?limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    let kinds: Vec<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "bolus_insulin",
            "carbohydrates",
            "basal_insulin",
            "exercise",
            "note",
            "sensor_start",
            "calibration"
        ],
        "{items:?}"
    );
    assert_eq!(items[0]["amount"], 4.5);
    assert_eq!(items[0]["amount_unit"], "[iU]");
    assert_eq!(items[1]["amount_unit"], "g");
    assert_eq!(items[1]["note"], "lunch, \"pasta\"");
    assert_eq!(items[2]["duration_minutes"], 30);
    assert_eq!(items[3]["amount"], Value::Null);
    assert_eq!(items[3]["amount_unit"], Value::Null);
    assert_eq!(items[6]["amount_unit"], "mg/dL");
    assert!((items[6]["amount"].as_f64().expect("mg/dL") - 6.1 * 18.01559).abs() < 1e-6);
    assert!(items.iter().all(|i| i["device_id"] == cgm_id.as_str()));

    // The patient's exports hold them: every one in the JSON record, one CSV row each with
    // its amount, unit and (quoted) note.
    let record = api
        .get_ok(&token, &format!("/v1/patients/{patient}/export/json"))
        .await;
    assert_eq!(record["treatments"].as_array().map(Vec::len), Some(7));
    let csv = api
        .get_text_ok(&token, &format!("/v1/patients/{patient}/export/csv"))
        .await;
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.ends_with(",duration_minutes,note")),
        "{csv}"
    );
    let carbs: Vec<&str> = csv
        .lines()
        .filter(|l| l.starts_with("carbohydrates,"))
        .collect();
    assert_eq!(carbs.len(), 1, "{csv}");
    assert!(carbs[0].contains(",45,g,"), "{csv}");
    assert!(carbs[0].ends_with(",\"lunch, \"\"pasta\"\"\""), "{csv}");
    assert_eq!(
        csv.lines()
            .filter(|l| l.starts_with("bolus_insulin,"))
            .count(),
        1,
        "{csv}"
    );

    // A clinician whose team holds a glucose grant sees no treatments; a treatments grant
    // shows them; every attempt is in the patient's access log.
    let org = store.create_organization("Clinic").await.expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes")
        .await
        .expect("team");
    let lee = create_user(store, "lee@clinic.example", Role::Clinician, None, PASSWORD).await;
    store.add_team_member(team.id, lee).await.expect("member");
    let lee_token = api.login("lee@clinic.example", PASSWORD).await;
    let grant = |categories: &[DataCategory]| NewGrant {
        patient_id,
        grantee: Grantee::CareTeam(team.id),
        categories: categories.iter().copied().collect(),
        access: [Access::ViewReadings].into(),
        purpose: Purpose::Care,
        data_since: None,
        expires_at: None,
        created_by: None,
    };
    let treatments_path = format!("/v1/patients/{patient}/treatments");
    store
        .create_grant(&grant(&[DataCategory::Glucose]))
        .await
        .expect("grant");
    let (status, body) = api.get(&lee_token, &treatments_path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.get("items").is_none(), "leaked {body}");
    store
        .create_grant(&grant(&[DataCategory::Treatments]))
        .await
        .expect("grant");
    let body = api.get_ok(&lee_token, &treatments_path).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(7), "{body}");

    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, outcome FROM access_log
         WHERE patient_id = $1 AND action = 'read_treatments' AND actor_id = $2
         ORDER BY id",
    )
    .bind(patient_id)
    .bind(lee)
    .fetch_all(&db.pool)
    .await
    .expect("access log");
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0].1, "denied");
    assert_eq!(logged[1].1, "allowed");

    // Erasing the record erases its treatments.
    let (status, body) = api
        .call(
            Some(&token),
            reqwest::Method::DELETE,
            &format!("/v1/patients/{patient}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(db.count("treatment_samples").await, 0);
}
