//! `POST /v1/fhir/$submit-cgm-bundle` (HL7 FHIR CGM IG 1.0.0 data submission): a CGM Data
//! Submission Bundle (a Device, sensor readings 99504-3 in mg/dL and 105272-9 in mmol/L, a
//! summary Observation, a bad reading, a repeated reading) round-trips into the readings API,
//! the `transaction-response` answers each entry in order, a resubmission stores nothing
//! twice, and whole-Bundle refusals are OperationOutcomes. The submitted Bundle and every
//! answer are validated with the independent FHIR models (fhir.resources).

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::readers::run_reader;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "a long submission test password";
const IG: &str = "http://hl7.org/fhir/uv/cgm/StructureDefinition/";
const ROUTE: &str = "/v1/fhir/$submit-cgm-bundle";

fn reading(patient: Uuid, at: DateTime<Utc>, value: f64, mmol: bool, id: &str) -> Value {
    let (profile, code, display, unit) = if mmol {
        (
            "cgm-sensor-reading-moles-per-volume",
            "105272-9",
            "Glucose [Moles/volume] in Interstitial fluid",
            "mmol/L",
        )
    } else {
        (
            "cgm-sensor-reading-mass-per-volume",
            "99504-3",
            "Glucose [Mass/volume] in Interstitial fluid",
            "mg/dL",
        )
    };
    json!({
        "fullUrl": format!("urn:uuid:{}", Uuid::new_v4()),
        "resource": {
            "resourceType": "Observation",
            "meta": {"profile": [format!("{IG}{profile}")]},
            "identifier": [{"system": "urn:example:cgm-app", "value": id}],
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "effectiveDateTime": at.to_rfc3339(),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        },
        "request": {"method": "POST", "url": "Observation"},
    })
}

fn bundle(patient: Uuid, t0: DateTime<Utc>) -> Value {
    let minutes = |m: i64| t0 + Duration::minutes(m);
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [format!("{IG}cgm-data-submission-bundle")]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:2f7c1d0e-5a44-4c1b-9a57-0b5d3c0f8e21",
                "resource": {
                    "resourceType": "Device",
                    "identifier": [{"system": "urn:example:cgm-app", "value": "sensor-1"}],
                    "deviceName": [{"name": "Example CGM", "type": "user-friendly-name"}],
                    "patient": {"reference": format!("Patient/{patient}")},
                },
                "request": {"method": "POST", "url": "Device"},
            },
            reading(patient, minutes(0), 110.0, false, "r0"),
            reading(patient, minutes(5), 121.0, false, "r1"),
            reading(patient, minutes(10), 133.0, false, "r2"),
            reading(patient, minutes(15), 7.0, true, "r3"),
            reading(patient, minutes(20), 2000.0, false, "r4"),
            {
                "fullUrl": "urn:uuid:8d0c2b0a-1f0e-4a5e-b3a4-7b2c9c1e6f10",
                "resource": {
                    "resourceType": "Observation",
                    "meta": {"profile": [format!("{IG}cgm-summary-mean-glucose-mass-per-volume")]},
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "97507-8"}]},
                    "subject": {"reference": format!("Patient/{patient}")},
                    "effectivePeriod": {"start": minutes(0).to_rfc3339(), "end": minutes(20).to_rfc3339()},
                    "valueQuantity": {"value": 121.3, "unit": "mg/dl", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            reading(patient, minutes(5), 121.0, false, "r1"),
        ],
    })
}

async fn submit(server: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .http()
        .post(server.http_url(ROUTE))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .expect("submit");
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json",
        "{status}"
    );
    let body: Value = response.json().await.expect("JSON");
    run_reader(
        "fhir_validate.py",
        &serde_json::to_vec(&body).expect("bytes"),
    );
    (status, body)
}

fn statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn submitted_bundle_round_trips_and_is_stored_once() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Amy".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient")
        .id;
    create_user(
        &store,
        "amy@example.org",
        Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let team = {
        let org = store.create_organization("Clinic").await.expect("org");
        store
            .create_care_team(org.id, "Diabetes")
            .await
            .expect("team")
    };
    let lee = create_user(
        &store,
        "lee@clinic.example",
        Role::Clinician,
        None,
        PASSWORD,
    )
    .await;
    store.add_team_member(team.id, lee).await.expect("member");
    store
        .create_grant(&NewGrant {
            patient_id: patient,
            grantee: Grantee::CareTeam(team.id),
            categories: DataCategory::ALL.iter().copied().collect(),
            access: [Access::ViewReadings, Access::ViewTrends, Access::Export].into(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
    let api = ApiClient::new(&server);
    let amy = api.login("amy@example.org", PASSWORD).await;
    let lee = api.login("lee@clinic.example", PASSWORD).await;

    let t0 = (Utc::now() - Duration::days(2))
        .duration_trunc(Duration::minutes(5))
        .expect("truncate");
    let submission = bundle(patient, t0);
    // The test's input is valid FHIR R4 by the independent models too.
    assert_eq!(
        run_reader(
            "fhir_validate.py",
            &serde_json::to_vec(&submission).expect("bytes")
        )
        .trim(),
        "8"
    );

    let (status, response) = submit(&server, &amy, &submission).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["resourceType"], "Bundle");
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(
        statuses(&response),
        [
            "200 OK",      // the Device: acknowledged, not stored
            "201 Created", // readings
            "201 Created",
            "201 Created",
            "201 Created", // the mmol/L reading
            "422 Unprocessable Entity",
            "200 OK", // the summary: not stored
            "200 OK", // the repeat of entry 2
        ],
        "{response}"
    );
    let refused = &response["entry"][5]["response"]["outcome"]["issue"][0];
    assert!(
        refused["diagnostics"]
            .as_str()
            .is_some_and(|d| d.starts_with("out_of_range")),
        "{refused}"
    );
    assert_eq!(
        response["entry"][7]["response"]["outcome"]["issue"][0]["code"],
        "duplicate"
    );

    let glucose = api
        .get_ok(&amy, &format!("/v1/patients/{patient}/glucose"))
        .await;
    let got: Vec<(String, f64, String)> = glucose["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|g| {
            (
                g["measured_at"].as_str().unwrap_or("").to_owned(),
                g["value"].as_f64().unwrap_or(0.0),
                g["source"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let at = |m: i64| {
        (t0 + Duration::minutes(m))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    assert_eq!(got.len(), 4, "{glucose}");
    for (i, (m, value)) in [(0, 110.0), (5, 121.0), (10, 133.0), (15, 7.0 * 18.01559)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(got[i].0, at(m));
        assert!((got[i].1 - value).abs() < 0.01, "{:?}", got[i]);
        assert_eq!(got[i].2, "cgm");
    }
    let refusals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rejected_readings WHERE patient_id = $1")
            .bind(patient)
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(refusals, 1, "the refused reading is recorded");

    // Resubmitted: nothing is stored twice.
    let (status, again) = submit(&server, &amy, &submission).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        statuses(&again),
        [
            "200 OK",
            "200 OK",
            "200 OK",
            "200 OK",
            "200 OK",
            "422 Unprocessable Entity",
            "200 OK",
            "200 OK",
        ]
    );
    let glucose = api
        .get_ok(&amy, &format!("/v1/patients/{patient}/glucose"))
        .await;
    assert_eq!(glucose["items"].as_array().map(Vec::len), Some(4));

    // A clinician who may read everything may not write: refused as a whole, nothing stored.
    let other = bundle(patient, t0 + Duration::hours(1));
    let (status, refusal) = submit(&server, &lee, &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refusal}");
    assert_eq!(refusal["resourceType"], "OperationOutcome");
    let glucose = api
        .get_ok(&amy, &format!("/v1/patients/{patient}/glucose"))
        .await;
    assert_eq!(glucose["items"].as_array().map(Vec::len), Some(4));

    // Whole-Bundle refusals.
    let mut batch = submission.clone();
    batch["type"] = json!("batch");
    let (status, refusal) = submit(&server, &amy, &batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["resourceType"], "OperationOutcome");
    let mut two_patients = submission.clone();
    two_patients["entry"][2]["resource"]["subject"]["reference"] =
        json!(format!("Patient/{}", Uuid::new_v4()));
    let (status, refusal) = submit(&server, &amy, &two_patients).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");

    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'submit_cgm_bundle'",
    )
    .bind(patient)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(
        logged, 3,
        "two submissions and the clinician's attempt are logged"
    );
}
