//! The authorization matrix: every patient-data endpoint of the OpenAPI document, for every
//! kind of caller and grant state, against a running server. It asserts the status, that no
//! reading leaks on a refusal, and that every attempt lands in the patient's access log. It
//! fails when the API gains a patient-data endpoint this table does not cover.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice, create_user};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

#[path = "sharing_matrix/alerts.rs"]
mod alerts;
#[path = "sharing_matrix/channels.rs"]
mod channels;
#[path = "sharing_matrix/invitations.rs"]
mod invitations;
#[path = "sharing_matrix/share_links.rs"]
mod share_links;

const PASSWORD: &str = "matrix test password";

/// Every patient-data endpoint (path with `{patient_id}`) this test covers.
const COVERED: &[(&str, &str)] = &[
    ("GET", "/v1/patients/{patient_id}/glucose"),
    ("GET", "/v1/patients/{patient_id}/blood-pressure"),
    ("GET", "/v1/patients/{patient_id}/treatments"),
    ("GET", "/v1/patients/{patient_id}/devices"),
    ("POST", "/v1/patients/{patient_id}/devices"),
    ("DELETE", "/v1/patients/{patient_id}/devices/{device_id}"),
    ("GET", "/v1/patients/{patient_id}/gateways"),
    ("POST", "/v1/patients/{patient_id}/gateways"),
    ("DELETE", "/v1/patients/{patient_id}/gateways/{gateway_id}"),
    ("GET", "/v1/patients/{patient_id}/grants"),
    ("POST", "/v1/patients/{patient_id}/grants"),
    ("DELETE", "/v1/patients/{patient_id}/grants/{grant_id}"),
    ("GET", "/v1/patients/{patient_id}/access-log"),
    ("POST", "/v1/patients/{patient_id}/emergency-access"),
    ("GET", "/v1/patients/{patient_id}/emergency-access"),
    ("GET", "/v1/patients/{patient_id}/export/fhir"),
    ("GET", "/v1/patients/{patient_id}/export/csv"),
    ("GET", "/v1/patients/{patient_id}/export/json"),
    ("DELETE", "/v1/patients/{patient_id}"),
    ("GET", "/v1/research/patients/{patient_id}/glucose"),
    ("GET", "/v1/patients/{patient_id}/guardians"),
    ("POST", "/v1/patients/{patient_id}/guardians"),
    ("DELETE", "/v1/patients/{patient_id}/guardians/{user_id}"),
    ("GET", "/v1/patients/{patient_id}/alerts"),
    (
        "POST",
        "/v1/patients/{patient_id}/alerts/{alert_id}/acknowledge",
    ),
    (
        "POST",
        "/v1/patients/{patient_id}/alerts/{alert_id}/resolve",
    ),
    ("POST", "/v1/patients/{patient_id}/alerts/snooze"),
    ("DELETE", "/v1/patients/{patient_id}/alerts/snooze"),
    ("GET", "/v1/patients/{patient_id}/targets"),
    ("PUT", "/v1/patients/{patient_id}/targets"),
    ("GET", "/v1/patients/{patient_id}/targets/changes"),
    ("GET", "/v1/patients/{patient_id}/trends/glucose"),
    ("GET", "/v1/patients/{patient_id}/trends/blood-pressure"),
    ("GET", "/v1/patients/{patient_id}/reports/agp.pdf"),
    ("GET", "/v1/patients/{patient_id}/fhir/cgm-summary"),
    ("GET", "/v1/patients/{patient_id}/share-links"),
    ("POST", "/v1/patients/{patient_id}/share-links"),
    ("DELETE", "/v1/patients/{patient_id}/share-links/{link_id}"),
    ("GET", "/v1/patients/{patient_id}/nightscout"),
    ("POST", "/v1/patients/{patient_id}/nightscout/uploaders"),
    ("POST", "/v1/patients/{patient_id}/imports/preview"),
    ("POST", "/v1/patients/{patient_id}/imports"),
];

struct World {
    db: TestDatabase,
    /// Runs for as long as the test does.
    server: TestApp,
    store: Store,
    api: ApiClient,
    patient: Uuid,
    other_patient: Uuid,
    team: Uuid,
    other_team: Uuid,
    device: String,
    tokens: std::collections::HashMap<&'static str, String>,
}

async fn user(store: &Store, email: &str, role: Role, patient: Option<Uuid>) -> Uuid {
    create_user(store, email, role, patient, PASSWORD).await
}

async fn world() -> World {
    let db = TestDatabase::create().await.expect("database");
    // The world's readings are hours old: research reads withhold no days here (the hold-back
    // itself is tested in research_deidentification.rs).
    // Personal webhooks (the channels matrix) go to a receiver on loopback, which only the
    // operator's allow-list opens.
    let server = TestApp::launch(
        &db,
        &[
            "--research-holdback-days",
            "0",
            "--webhook-allow",
            "127.0.0.1",
        ],
    )
    .await
    .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let new_patient = |name: &str| NewPatient {
        display_name: name.into(),
        time_zone: "Europe/Berlin".into(),
    };
    let patient = store
        .create_patient(&new_patient("Pat"))
        .await
        .expect("patient")
        .id;
    let other_patient = store
        .create_patient(&new_patient("Quinn"))
        .await
        .expect("patient")
        .id;
    user(&store, "pat@example.org", Role::Patient, Some(patient)).await;
    let guardian = user(&store, "guardian@example.org", Role::Caregiver, None).await;
    store
        .add_guardian(patient, guardian)
        .await
        .expect("guardian");
    user(&store, "carer@example.org", Role::Caregiver, None).await;
    let north = store
        .create_organization("North Clinic")
        .await
        .expect("org");
    let south = store
        .create_organization("South Clinic")
        .await
        .expect("org");
    let team = store
        .create_care_team(north.id, "North diabetes")
        .await
        .expect("team");
    let other_team = store
        .create_care_team(south.id, "South diabetes")
        .await
        .expect("team");
    let lee = user(&store, "lee@north.example", Role::Clinician, None).await;
    store.add_team_member(team.id, lee).await.expect("member");
    let kim = user(&store, "kim@south.example", Role::Clinician, None).await;
    store
        .add_team_member(other_team.id, kim)
        .await
        .expect("member");
    user(&store, "res@uni.example", Role::Researcher, None).await;
    user(&store, "admin@example.org", Role::Admin, None).await;

    let (device, secret) = server
        .add_device(&patient.to_string(), "cgm")
        .await
        .expect("device");
    let mut cgm = TestDevice::connect(server.mqtt_port(), &device, Some(&secret))
        .await
        .expect("connect");
    let mut readings: Vec<Value> = [72 * 60, 60]
        .iter()
        .map(|m| json!({"type": "glucose", "value": 120, "unit": "mg/dL", "measured_at": (Utc::now() - Duration::minutes(*m)).to_rfc3339()}))
        .collect();
    readings.push(json!({"type": "insulin", "delivery": "bolus", "units": 3, "measured_at": (Utc::now() - Duration::minutes(61)).to_rfc3339()}));
    assert_eq!(
        cgm.send(json!({"readings": readings}).to_string())
            .await
            .expect("ack")
            .stored,
        3
    );
    let (cuff, cuff_secret) = server
        .add_device(&patient.to_string(), "bp")
        .await
        .expect("device");
    let mut bp = TestDevice::connect(server.mqtt_port(), &cuff, Some(&cuff_secret))
        .await
        .expect("connect");
    let bp_reading = json!({"type": "blood_pressure", "systolic": 150, "diastolic": 95, "measured_at": (Utc::now() - Duration::hours(2)).to_rfc3339()});
    assert_eq!(
        bp.send(bp_reading.to_string()).await.expect("ack").stored,
        1
    );

    let mut w = World {
        db,
        api: ApiClient::new(&server),
        server,
        store,
        patient,
        other_patient,
        team: team.id,
        other_team: other_team.id,
        device,
        tokens: Default::default(),
    };
    for (name, email) in [
        ("patient", "pat@example.org"),
        ("guardian", "guardian@example.org"),
        ("caregiver", "carer@example.org"),
        ("clinician", "lee@north.example"),
        ("other_org_clinician", "kim@south.example"),
        ("researcher", "res@uni.example"),
        ("admin", "admin@example.org"),
    ] {
        let token = w.api.login(email, PASSWORD).await;
        w.tokens.insert(name, token);
    }
    w
}

impl World {
    async fn call(
        &self,
        who: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = self.tokens.get(who).map(String::as_str);
        self.api.call(token, method, path, body).await
    }

    async fn grant_to(
        &self,
        grantee: Grantee,
        categories: &[DataCategory],
        access: &[Access],
        purpose: Purpose,
        patient: Uuid,
        tweak: impl FnOnce(&mut NewGrant),
    ) -> Uuid {
        let mut grant = NewGrant {
            patient_id: patient,
            grantee,
            categories: categories.iter().copied().collect(),
            access: access.iter().copied().collect(),
            purpose,
            data_since: None,
            expires_at: None,
            created_by: None,
        };
        tweak(&mut grant);
        self.store.create_grant(&grant).await.expect("grant").id
    }

    async fn revoke_all(&self) {
        for patient in [self.patient, self.other_patient] {
            for g in self
                .store
                .grants_for_patient(patient)
                .await
                .expect("grants")
            {
                self.store
                    .revoke_grant(patient, g.id)
                    .await
                    .expect("revoke");
            }
        }
    }

    async fn log_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM access_log WHERE patient_id = $1")
            .bind(self.patient)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    async fn last_outcome(&self) -> String {
        sqlx::query_scalar(
            "SELECT outcome FROM access_log WHERE patient_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(self.patient)
        .fetch_one(&self.db.pool)
        .await
        .expect("entry")
    }
}

/// The read endpoints' expected statuses for one caller in one grant state:
/// (glucose, blood pressure, devices, grants, access log, treatments).
type Reads = [u16; 6];

async fn check_reads(w: &World, state: &str, who: &str, expected: Reads) {
    let p = w.patient;
    let paths = [
        format!("/v1/patients/{p}/glucose"),
        format!("/v1/patients/{p}/blood-pressure"),
        format!("/v1/patients/{p}/devices"),
        format!("/v1/patients/{p}/grants"),
        format!("/v1/patients/{p}/access-log"),
        format!("/v1/patients/{p}/treatments"),
    ];
    for (path, want) in paths.iter().zip(expected) {
        let logged_before = w.log_len().await;
        let (status, body) = w.call(who, Method::GET, path, None).await;
        assert_eq!(status.as_u16(), want, "{state}: {who} GET {path}: {body}");
        if want >= 400 {
            assert!(
                body.get("items").is_none() && body.get("code").is_some(),
                "{state}: {who} GET {path} leaked {body}"
            );
        }
        if who != "anonymous" {
            assert_eq!(
                w.log_len().await,
                logged_before + 1,
                "{state}: {who} GET {path} was not logged"
            );
            let outcome = w.last_outcome().await;
            assert_eq!(
                outcome == "allowed",
                want == 200,
                "{state}: {who} GET {path} logged as {outcome}"
            );
        }
    }
}

/// The trend endpoints' expected statuses: (glucose trend, blood-pressure trend). The AGP
/// report and the FHIR CGM summary are glucose trends: they answer as the glucose trend does.
type Trends = [u16; 2];

/// Checks the trend endpoints for one caller in one grant state: the status, that a refusal
/// holds no figures, that an allowed trend holds the figures of every reading the grant
/// shows (`glucose_readings` of them), that trends never carry an individual reading unless
/// the caller may see readings, and that every attempt is logged with its outcome.
async fn check_trends(w: &World, state: &str, who: &str, expected: Trends, glucose_readings: i64) {
    let p = w.patient;
    let paths = [
        (
            format!("/v1/patients/{p}/trends/glucose?days=7"),
            expected[0],
        ),
        (
            format!("/v1/patients/{p}/trends/blood-pressure?days=7"),
            expected[1],
        ),
        (
            format!("/v1/patients/{p}/reports/agp.pdf?days=7"),
            expected[0],
        ),
        (
            format!("/v1/patients/{p}/fhir/cgm-summary?days=7"),
            expected[0],
        ),
    ];
    for (i, (path, want)) in paths.iter().enumerate() {
        let want = *want;
        let logged_before = w.log_len().await;
        let (status, body) = w.call(who, Method::GET, path, None).await;
        assert_eq!(status.as_u16(), want, "{state}: {who} GET {path}: {body}");
        if want >= 400 {
            assert!(
                body.get("metrics").is_none()
                    && body.get("entry").is_none()
                    && body.get("code").is_some(),
                "{state}: {who} GET {path} leaked {body}"
            );
        } else if i < 2 {
            let readings = if i == 0 { glucose_readings } else { 1 };
            assert_eq!(
                body["metrics"]["readings"], readings,
                "{state}: {who} GET {path}: {body}"
            );
        } else if i == 3 {
            // The summary exists exactly when the grant shows glucose readings.
            let entries = body["entry"].as_array().map_or(0, Vec::len);
            assert_eq!(
                entries > 0,
                glucose_readings > 0,
                "{state}: {who} GET {path}: {body}"
            );
        }
        if who != "anonymous" {
            assert_eq!(
                w.log_len().await,
                logged_before + 1,
                "{state}: {who} GET {path} was not logged"
            );
            let outcome = w.last_outcome().await;
            assert_eq!(
                outcome == "allowed",
                want == 200,
                "{state}: {who} GET {path} logged as {outcome}"
            );
        }
    }
}

/// The panel as `who` sees it: the row of the matrix's patient, if listed.
async fn panel_row(w: &World, who: &str) -> Option<Value> {
    let (status, body) = w.call(who, Method::GET, "/v1/panel", None).await;
    assert_eq!(status, StatusCode::OK, "{who}: {body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["patient_id"] == w.patient.to_string())
        .cloned()
}

#[tokio::test]
async fn the_authorization_matrix() {
    let w = world().await;

    // Coverage: every patient-data endpoint in the OpenAPI document is in this table.
    let (_, openapi) = w
        .call("anonymous", Method::GET, "/openapi.json", None)
        .await;
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() && path.contains("{patient_id}") {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let covered: BTreeSet<(String, String)> = COVERED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, covered,
        "a patient-data endpoint is missing from the matrix (or gone from the API)"
    );

    let (n, f, r) = (404u16, 403u16, 200u16);
    let nobody: Reads = [n, n, n, n, n, n];
    let everything: Reads = [r, r, r, r, r, r];
    let team = Grantee::CareTeam(w.team);
    use Access::*;
    use DataCategory::*;

    // No grant at all: the patient and their guardian see everything; nobody else sees anything.
    check_reads(&w, "no grant", "patient", everything).await;
    check_reads(&w, "no grant", "guardian", everything).await;
    check_trends(&w, "no grant", "patient", [r, r], 2).await;
    check_trends(&w, "no grant", "guardian", [r, r], 2).await;
    for who in [
        "caregiver",
        "clinician",
        "other_org_clinician",
        "researcher",
        "admin",
    ] {
        check_reads(&w, "no grant", who, nobody).await;
        check_trends(&w, "no grant", who, [n, n], 0).await;
        assert!(
            panel_row(&w, who).await.is_none(),
            "{who} lists the patient"
        );
    }
    assert_eq!(
        w.call(
            "anonymous",
            Method::GET,
            &format!("/v1/patients/{}/glucose", w.patient),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // A glucose grant to the clinician's team.
    w.grant_to(
        team,
        &[Glucose],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "glucose grant", "clinician", [r, f, f, n, n, f]).await;
    check_reads(&w, "glucose grant", "other_org_clinician", nobody).await;
    check_reads(&w, "glucose grant", "caregiver", nobody).await;
    check_reads(&w, "glucose grant", "admin", nobody).await;
    check_trends(&w, "glucose grant", "clinician", [r, f], 2).await;
    for who in ["other_org_clinician", "caregiver", "admin"] {
        check_trends(&w, "glucose grant", who, [n, n], 0).await;
    }
    let row = panel_row(&w, "clinician").await.expect("listed");
    assert_eq!(row["access"]["glucose"], "readings", "{row}");
    assert_eq!(row["glucose"]["latest"]["value"], 120.0, "{row}");
    assert!(
        row["blood_pressure"].is_null(),
        "no blood-pressure grant: {row}"
    );
    assert!(panel_row(&w, "other_org_clinician").await.is_none());
    w.revoke_all().await;
    check_reads(&w, "revoked", "clinician", nobody).await;
    check_trends(&w, "revoked", "clinician", [n, n], 0).await;
    assert!(panel_row(&w, "clinician").await.is_none(), "revoked");

    // Wrong category, expired, trends only, wrong patient, another organization's team.
    w.grant_to(
        team,
        &[BloodPressure, DeviceInfo],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "blood-pressure grant", "clinician", [f, r, r, n, n, f]).await;
    check_trends(&w, "blood-pressure grant", "clinician", [f, r], 0).await;
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Treatments],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "treatments grant", "clinician", [f, f, f, n, n, r]).await;
    check_reads(&w, "treatments grant", "other_org_clinician", nobody).await;
    check_trends(&w, "treatments grant", "clinician", [f, f], 0).await;
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Treatments],
        &[ViewTrends],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(
        &w,
        "treatments, trends only",
        "clinician",
        [f, f, f, n, n, f],
    )
    .await;
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Glucose],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |g| {
            g.expires_at = Some(Utc::now() - Duration::seconds(1));
        },
    )
    .await;
    check_reads(&w, "expired", "clinician", nobody).await;
    check_trends(&w, "expired", "clinician", [n, n], 0).await;
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ViewTrends],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "trends only", "clinician", [f, f, f, n, n, f]).await;
    check_trends(&w, "trends only", "clinician", [r, r], 2).await;
    let (_, trend) = w
        .call(
            "clinician",
            Method::GET,
            &format!("/v1/patients/{}/trends/glucose", w.patient),
            None,
        )
        .await;
    assert_eq!(trend["individual_readings"], false, "{trend}");
    let row = panel_row(&w, "clinician").await.expect("listed");
    assert_eq!(row["access"]["glucose"], "trends", "{row}");
    let latest = &row["glucose"]["latest"];
    assert!(
        latest["age_minutes"].as_i64().is_some()
            && latest["value"].is_null()
            && latest["measured_at"].is_null(),
        "trends only: the latest reading's age, never its value or time: {row}"
    );
    assert!(
        row["blood_pressure"]["latest"]["systolic"].is_null(),
        "trends only: {row}"
    );
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Glucose],
        &[ViewReadings],
        Purpose::Care,
        w.other_patient,
        |_| {},
    )
    .await;
    check_reads(&w, "grant on another patient", "clinician", nobody).await;
    check_trends(&w, "grant on another patient", "clinician", [n, n], 0).await;
    w.grant_to(
        Grantee::CareTeam(w.other_team),
        &[Glucose],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "another organization's team", "clinician", nobody).await;
    check_trends(&w, "another organization's team", "clinician", [n, n], 0).await;
    check_trends(
        &w,
        "another organization's team",
        "other_org_clinician",
        [r, f],
        2,
    )
    .await;
    check_reads(
        &w,
        "another organization's team",
        "other_org_clinician",
        [r, f, f, n, n, f],
    )
    .await;
    w.revoke_all().await;

    // A window: the 3-day-old reading stays hidden whatever the caller asks for.
    let since: DateTime<Utc> = Utc::now() - Duration::days(1);
    w.grant_to(
        team,
        &[Glucose],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |g| g.data_since = Some(since),
    )
    .await;
    let (_, body) = w
        .call(
            "clinician",
            Method::GET,
            &format!(
                "/v1/patients/{}/glucose?from=2000-01-01T00:00:00Z",
                w.patient
            ),
            None,
        )
        .await;
    assert_eq!(
        body["items"].as_array().map(Vec::len),
        Some(1),
        "data_since: {body}"
    );
    // Trends too are computed only from what the window shows.
    check_trends(&w, "data_since", "clinician", [r, f], 1).await;
    let row = panel_row(&w, "clinician").await.expect("listed");
    assert_eq!(row["glucose"]["readings"], 1, "data_since: {row}");
    w.revoke_all().await;

    // The patient list shows exactly the patients a caller holds a grant for (research grants
    // without a name), and a list is itself logged.
    let listed = |who: &'static str| {
        let w = &w;
        async move {
            let (status, body) = w.call(who, Method::GET, "/v1/patients", None).await;
            assert_eq!(status, StatusCode::OK, "{who}: {body}");
            body.as_array().expect("list").clone()
        }
    };
    assert!(listed("clinician").await.is_empty(), "no grant, no patient");
    assert!(listed("admin").await.is_empty());
    let own = listed("patient").await;
    assert_eq!((own.len(), own[0]["basis"].as_str()), (1, Some("own")));
    w.grant_to(
        team,
        &[Glucose],
        &[ViewTrends],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    let seen = listed("clinician").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            seen[0]["patient_id"].as_str(),
            seen[0]["display_name"].as_str()
        ),
        (Some(w.patient.to_string().as_str()), Some("Pat"))
    );
    assert_eq!(
        (
            &seen[0]["shared"][0]["categories"],
            &seen[0]["shared"][0]["access"]
        ),
        (&json!(["glucose"]), &json!(["view_trends"])),
        "the list says what is shared with the caller: {seen:?}"
    );
    assert!(
        seen[0]["time_zone"].is_string(),
        "a care team sees the patient's time zone: {seen:?}"
    );
    assert!(listed("other_org_clinician").await.is_empty());
    w.grant_to(
        Grantee::User(user_id(&w, "res@uni.example").await),
        &[Glucose],
        &[ViewTrends],
        Purpose::Research,
        w.patient,
        |_| {},
    )
    .await;
    let research = listed("researcher").await;
    assert_eq!(research.len(), 1);
    assert_eq!(
        research[0]["shared"][0]["purpose"], "research",
        "the list says what is shared: {research:?}"
    );
    assert!(
        research[0]["display_name"].is_null() && research[0]["time_zone"].is_null(),
        "research access is pseudonymous, without even a time zone: {research:?}"
    );
    assert_ne!(
        research[0]["patient_id"].as_str(),
        Some(w.patient.to_string().as_str()),
        "research never sees the record id"
    );
    assert_eq!(
        listed("researcher").await[0]["patient_id"],
        research[0]["patient_id"],
        "the pseudonym is stable"
    );
    // Research output: pseudonymous, shifted, and free of every direct identifier.
    let pseudonym = research[0]["patient_id"]
        .as_str()
        .expect("pseudonym")
        .to_owned();
    let research_path = |id: &str| format!("/v1/research/patients/{id}/glucose");
    let (status, _) = w
        .call("researcher", Method::GET, &research_path(&pseudonym), None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a trends-only research grant gives no readings"
    );
    // A second research grant is a second study: the patient appears under a second,
    // unrelated pseudonym, and each study reads only under its own grant.
    w.grant_to(
        Grantee::User(user_id(&w, "res@uni.example").await),
        &[Glucose],
        &[ViewReadings],
        Purpose::Research,
        w.patient,
        |_| {},
    )
    .await;
    let studies = listed("researcher").await;
    assert_eq!(studies.len(), 2, "one entry per study: {studies:?}");
    let first_study = pseudonym;
    let pseudonym = studies
        .iter()
        .filter_map(|s| s["patient_id"].as_str())
        .find(|id| *id != first_study)
        .expect("a second pseudonym")
        .to_owned();
    assert_eq!(
        w.call(
            "researcher",
            Method::GET,
            &research_path(&first_study),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN,
        "the trends-only study still reads no readings"
    );
    let logged_before = w.log_len().await;
    let (status, body) = w
        .call("researcher", Method::GET, &research_path(&pseudonym), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        w.log_len().await,
        logged_before + 1,
        "research reads are in the patient's log"
    );
    let text = body.to_string();
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    for identifier in [
        w.patient.to_string(),
        w.device.clone(),
        "Pat".to_owned(),
        "pat@example.org".to_owned(),
    ] {
        assert!(
            !text.contains(&identifier),
            "research output contains {identifier}: {text}"
        );
    }
    let (_, identified) = w
        .call(
            "patient",
            Method::GET,
            &format!("/v1/patients/{}/glucose", w.patient),
            None,
        )
        .await;
    let true_times: BTreeSet<String> = identified["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["measured_at"].as_str().unwrap_or_default().to_owned())
        .collect();
    for item in body.as_array().expect("items") {
        let shifted = item["shifted_at"].as_str().unwrap_or_default();
        assert!(!true_times.contains(shifted), "times are shifted");
    }
    for (who, id) in [
        ("researcher", w.patient.to_string()),
        ("clinician", pseudonym.clone()),
        ("patient", pseudonym.clone()),
        ("admin", pseudonym.clone()),
    ] {
        let (status, _) = w.call(who, Method::GET, &research_path(&id), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who} with {id}");
    }
    w.revoke_all().await;
    assert!(
        listed("clinician").await.is_empty(),
        "revoked, gone from the list"
    );

    // Caregiving and research purposes: a caregiver with a caregiving grant reads; a researcher
    // never gets identified readings from the clinical endpoints.
    w.grant_to(
        Grantee::User(user_id(&w, "carer@example.org").await),
        &[Glucose],
        &[ViewReadings],
        Purpose::Caregiving,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(&w, "caregiving grant", "caregiver", [r, f, f, n, n, f]).await;
    check_reads(&w, "caregiving grant", "clinician", nobody).await;
    check_trends(&w, "caregiving grant", "caregiver", [r, f], 2).await;
    check_trends(&w, "caregiving grant", "clinician", [n, n], 0).await;
    w.grant_to(
        Grantee::User(user_id(&w, "res@uni.example").await),
        &[Glucose],
        &[ViewReadings],
        Purpose::Research,
        w.patient,
        |_| {},
    )
    .await;
    // Nor does it confirm that a record id belongs to the study: 404, as for a stranger.
    check_reads(&w, "research grant", "researcher", [n, n, n, n, n, n]).await;
    // Trends carry true dates: identified, so research grants do not open them.
    check_trends(&w, "research grant", "researcher", [n, n], 0).await;
    assert!(
        panel_row(&w, "researcher").await.is_none(),
        "the panel is identified: no research rows"
    );
    w.revoke_all().await;

    // Emergency access: clinicians only, with a reason; then readings, not the patient's settings.
    let emergency = format!("/v1/patients/{}/emergency-access", w.patient);
    assert_eq!(
        w.call(
            "caregiver",
            Method::POST,
            &emergency,
            Some(json!({"reason": "found unconscious at home"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call(
            "clinician",
            Method::POST,
            &emergency,
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let made_up = format!("/v1/patients/{}/emergency-access", Uuid::new_v4());
    assert_eq!(
        w.call(
            "clinician",
            Method::POST,
            &made_up,
            Some(json!({"reason": "found unconscious at home"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // A bounded reason: 1.75 MB of it is refused.
    let (status, _) = w
        .call(
            "clinician",
            Method::POST,
            &emergency,
            Some(json!({"reason": "y".repeat(501)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Without a care relationship (no care grant of the patient, past or present, names the
    // clinician, their team or organization) the patient looks like an unknown one.
    let stranger = w
        .store
        .create_patient(&NewPatient {
            display_name: "Stranger".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .await
        .expect("patient")
        .id;
    let (status, _) = w
        .call(
            "clinician",
            Method::POST,
            &format!("/v1/patients/{stranger}/emergency-access"),
            Some(json!({"reason": "found unconscious at home"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a patient the clinician never cared for"
    );
    let (status, _) = w
        .call(
            "clinician",
            Method::POST,
            &emergency,
            Some(json!({"reason": "found unconscious at home"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // One at a time.
    let (status, body) = w
        .call(
            "clinician",
            Method::POST,
            &emergency,
            Some(json!({"reason": "still unconscious at home"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The patient and their guardian are told who opened it and why; nobody else sees it.
    for who in ["patient", "guardian"] {
        let (status, seen) = w.call(who, Method::GET, &emergency, None).await;
        assert_eq!(status, StatusCode::OK, "{who}: {seen}");
        assert_eq!(seen[0]["reason"], "found unconscious at home", "{seen}");
        assert_eq!(seen[0]["open"], true, "{seen}");
        assert!(seen[0]["clinician_name"].is_string(), "{seen}");
    }
    for who in [
        "clinician",
        "other_org_clinician",
        "caregiver",
        "researcher",
        "admin",
    ] {
        let (status, _) = w.call(who, Method::GET, &emergency, None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{who} lists emergency accesses"
        );
    }
    check_reads(&w, "emergency", "clinician", [r, r, r, n, n, r]).await;
    check_reads(&w, "emergency", "other_org_clinician", nobody).await;
    check_trends(&w, "emergency", "clinician", [r, r], 2).await;
    check_trends(&w, "emergency", "other_org_clinician", [n, n], 0).await;
    let (_, log) = w
        .call(
            "patient",
            Method::GET,
            &format!("/v1/patients/{}/access-log?limit=1000", w.patient),
            None,
        )
        .await;
    let items = log["items"].as_array().expect("log items");
    assert!(
        items.iter().any(|e| e["action"] == "open_emergency_access"
            && e["reason"] == "found unconscious at home"),
        "the patient sees the emergency access and its reason"
    );
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "read_glucose_readings" && !e["emergency_id"].is_null()),
        "reads under emergency access are marked"
    );

    // Writes: only the patient (or guardian) manages devices and grants.
    let p = w.patient;
    let grant_body = json!({"grantee": {"type": "care_team", "id": w.team}, "categories": ["glucose"], "access": ["view_readings"], "purpose": "care",
        "expires_at": (Utc::now() + Duration::days(30)).to_rfc3339()});
    for who in [
        "clinician",
        "other_org_clinician",
        "caregiver",
        "researcher",
        "admin",
    ] {
        assert_eq!(
            w.call(
                who,
                Method::POST,
                &format!("/v1/patients/{p}/grants"),
                Some(grant_body.clone())
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} creates a grant"
        );
        assert_eq!(
            w.call(
                who,
                Method::POST,
                &format!("/v1/patients/{p}/devices"),
                Some(json!({"kind": "meter"}))
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} pairs a device"
        );
        assert_eq!(
            w.call(
                who,
                Method::DELETE,
                &format!("/v1/patients/{p}/devices/{}", w.device),
                None
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} revokes a device"
        );
        let gateways = format!("/v1/patients/{p}/gateways");
        assert_eq!(
            w.call(who, Method::GET, &gateways, None).await.0,
            StatusCode::NOT_FOUND,
            "{who} lists gateways"
        );
        assert_eq!(
            w.call(
                who,
                Method::POST,
                &gateways,
                Some(json!({"devices": [w.device]}))
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} registers a gateway"
        );
    }
    for who in [
        "clinician",
        "other_org_clinician",
        "caregiver",
        "researcher",
        "admin",
    ] {
        for path in [
            format!("/v1/patients/{p}/export/fhir"),
            format!("/v1/patients/{p}/export/csv"),
            format!("/v1/patients/{p}/export/json"),
        ] {
            let (status, body) = w.call(who, Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{who} GET {path}: {body}");
        }
        let (status, _) = w
            .call(who, Method::DELETE, &format!("/v1/patients/{p}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who} erases the patient");
    }
    for who in ["patient", "guardian"] {
        for format in ["fhir", "json"] {
            let (status, _) = w
                .call(
                    who,
                    Method::GET,
                    &format!("/v1/patients/{p}/export/{format}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{who} exports {format}");
        }
    }
    let (status, grant) = w
        .call(
            "patient",
            Method::POST,
            &format!("/v1/patients/{p}/grants"),
            Some(grant_body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let grant_id = grant["id"].as_str().expect("grant id").to_owned();
    for who in ["clinician", "other_org_clinician", "admin"] {
        assert_eq!(
            w.call(
                who,
                Method::DELETE,
                &format!("/v1/patients/{p}/grants/{grant_id}"),
                None
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} revokes the grant"
        );
    }
    assert_eq!(
        w.call(
            "patient",
            Method::DELETE,
            &format!("/v1/patients/{}/grants/{grant_id}", w.other_patient),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "a grant is revoked only under its own patient"
    );
    let (status, paired) = w
        .call(
            "guardian",
            Method::POST,
            &format!("/v1/patients/{p}/devices"),
            Some(json!({"kind": "meter", "label": "kitchen meter"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paired}");
    assert!(
        paired["mqtt_password"]
            .as_str()
            .is_some_and(|s| s.len() >= 32)
    );
    // A gateway of the patient's own (their phone app) relays their devices.
    let gateways = format!("/v1/patients/{p}/gateways");
    let meter = paired["device"]["device_id"].as_str().expect("device id");
    let (status, gateway) = w
        .call(
            "guardian",
            Method::POST,
            &gateways,
            Some(json!({"label": "phone", "devices": [meter, w.device]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    assert!(
        gateway["mqtt_password"]
            .as_str()
            .is_some_and(|s| s.len() >= 32)
    );
    let gateway_id = gateway["gateway"]["gateway_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, listed) = w.call("patient", Method::GET, &gateways, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed[0]["devices"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(
        w.call(
            "patient",
            Method::POST,
            &format!("/v1/patients/{}/gateways", w.other_patient),
            Some(json!({"devices": [meter]}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "a patient registers no gateway for another"
    );
    for who in ["clinician", "other_org_clinician", "caregiver", "admin"] {
        assert_eq!(
            w.call(
                who,
                Method::DELETE,
                &format!("{gateways}/{gateway_id}"),
                None
            )
            .await
            .0,
            StatusCode::NOT_FOUND,
            "{who} revokes the gateway"
        );
    }
    assert_eq!(
        w.call(
            "patient",
            Method::DELETE,
            &format!("/v1/patients/{}/gateways/{gateway_id}", w.other_patient),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "a gateway is revoked only under its own patient"
    );
    let (status, _) = w
        .call(
            "patient",
            Method::DELETE,
            &format!("/v1/patients/{p}/devices/{}", w.device),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = w.call("patient", Method::GET, &gateways, None).await;
    assert_eq!(
        listed[0]["devices"].as_array().map(Vec::len),
        Some(1),
        "a revoked device leaves the gateway: {listed}"
    );
    assert_eq!(
        w.call(
            "patient",
            Method::POST,
            &gateways,
            Some(json!({"devices": [w.device]}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "a revoked device joins no gateway"
    );
    let (status, revoked) = w
        .call(
            "patient",
            Method::DELETE,
            &format!("{gateways}/{gateway_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, _) = w
        .call(
            "patient",
            Method::DELETE,
            &format!("/v1/patients/{p}/grants/{grant_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check_reads(
        &w,
        "after the patient revoked",
        "clinician",
        [r, r, r, n, n, r],
    )
    .await; // emergency still open

    // Export by a grantee holding `export`: only the granted categories, within the window,
    // each category decided and logged; never the patient's sharing settings.
    let fhir = format!("/v1/patients/{p}/export/fhir");
    let csv = format!("/v1/patients/{p}/export/csv");
    w.grant_to(
        Grantee::User(user_id(&w, "carer@example.org").await),
        &[Glucose],
        &[ViewReadings],
        Purpose::Caregiving,
        p,
        |_| {},
    )
    .await;
    let (status, body) = w.call("caregiver", Method::GET, &fhir, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "readings without export: {body}"
    );
    w.grant_to(
        Grantee::User(user_id(&w, "carer@example.org").await),
        &[Glucose],
        &[Export],
        Purpose::Caregiving,
        p,
        |g| g.data_since = Some(Utc::now() - Duration::days(1)),
    )
    .await;
    let logged_before = w.log_len().await;
    let (status, bundle) = w.call("caregiver", Method::GET, &fhir, None).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert_eq!(
        w.log_len().await,
        logged_before + 4,
        "one decision per category, each logged"
    );
    let entries = bundle["entry"].as_array().expect("entries");
    let observations: Vec<&Value> = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .collect();
    assert_eq!(
        observations.len(),
        1,
        "glucose only, within the window (the 3-day-old reading and blood pressure stay out)"
    );
    assert!(
        !bundle.to_string().contains("8480-6"),
        "no blood pressure in a glucose export"
    );
    let csv_text = w.api.get_text_ok(&w.tokens["caregiver"], &csv).await;
    assert_eq!(
        csv_text.lines().filter(|l| l.contains("glucose")).count(),
        1,
        "{csv_text}"
    );
    assert!(!csv_text.contains("blood_pressure"), "{csv_text}");
    assert!(
        !csv_text.contains("bolus_insulin"),
        "no treatments: {csv_text}"
    );
    // The JSON export of a grantee: the granted category within the window, and nothing of
    // the patient's own (grants, alerts, targets, access log).
    let (status, record) = w
        .call(
            "caregiver",
            Method::GET,
            &format!("/v1/patients/{p}/export/json"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        record["glucose"].as_array().map(Vec::len),
        Some(1),
        "{record}"
    );
    assert_eq!(
        record["treatments"].as_array().map(Vec::len),
        Some(0),
        "no treatments in a glucose export: {record}"
    );
    for own in [
        "blood_pressure",
        "grants",
        "alerts",
        "target_changes",
        "access_log",
    ] {
        assert_eq!(
            record[own].as_array().map(Vec::len),
            Some(0),
            "{own}: {record}"
        );
    }
    assert!(record["targets"].is_null(), "{record}");
    for who in ["clinician", "other_org_clinician", "researcher", "admin"] {
        assert_eq!(
            w.call(who, Method::GET, &fhir, None).await.0,
            StatusCode::NOT_FOUND,
            "{who} exports without a grant"
        );
    }
    w.revoke_all().await;
    assert_eq!(
        w.call("caregiver", Method::GET, &fhir, None).await.0,
        StatusCode::NOT_FOUND,
        "revoked export"
    );

    // Guardians: the patient names and removes them; a guardian sees who else is one but
    // names no one; everyone else learns nothing.
    let guardians = format!("/v1/patients/{p}/guardians");
    let (status, list) = w.call("patient", Method::GET, &guardians, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        w.call("guardian", Method::GET, &guardians, None).await.0,
        StatusCode::OK
    );
    let carer = json!({"email": "carer@example.org"});
    assert_eq!(
        w.call("guardian", Method::POST, &guardians, Some(carer.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a guardian names no other guardian"
    );
    for who in ["clinician", "caregiver", "researcher", "admin"] {
        assert_eq!(
            w.call(who, Method::GET, &guardians, None).await.0,
            StatusCode::NOT_FOUND,
            "{who} lists guardians"
        );
        assert_eq!(
            w.call(who, Method::POST, &guardians, Some(carer.clone()))
                .await
                .0,
            StatusCode::NOT_FOUND,
            "{who} names a guardian"
        );
    }
    assert_eq!(
        w.call(
            "patient",
            Method::POST,
            &guardians,
            Some(json!({"email": "admin@example.org"}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "an administrator is never a guardian"
    );
    let (status, named) = w
        .call("patient", Method::POST, &guardians, Some(carer))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{named}");
    check_reads(&w, "named guardian", "caregiver", everything).await;
    let carer_id = named["user_id"].as_str().expect("user id").to_owned();
    let remove = format!("/v1/patients/{p}/guardians/{carer_id}");
    assert_eq!(
        w.call("guardian", Method::DELETE, &remove, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call("clinician", Method::DELETE, &remove, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call("patient", Method::DELETE, &remove, None).await.0,
        StatusCode::NO_CONTENT
    );
    check_reads(&w, "guardian removed", "caregiver", nobody).await;

    // Alerts: receiving them needs receive_alerts on their category (sharing_matrix/alerts.rs).
    alerts::check(&w).await;

    // Share links and the Nightscout site (sharing_matrix/share_links.rs).
    share_links::check(&w).await;
    // Care-team invitations (sharing_matrix/invitations.rs).
    invitations::check(&w, &openapi).await;
}

async fn user_id(w: &World, email: &str) -> Uuid {
    w.store
        .user_for_login(email)
        .await
        .expect("query")
        .expect("user")
        .0
        .id
}

/// Imports and FHIR submissions write into the record: only the patient and the guardian they
/// named, whatever others are granted (a care team with every read and export is refused too).
/// Every attempt, allowed or refused, is in the patient's access log, and a refused import
/// stores nothing.
#[tokio::test]
async fn imports_only_by_the_patient_or_their_guardian() {
    let w = world().await;
    let p = w.patient;
    use Access::*;
    w.grant_to(
        Grantee::CareTeam(w.team),
        DataCategory::ALL,
        &[ViewReadings, ViewTrends, ReceiveAlerts, Export],
        Purpose::Care,
        p,
        |_| {},
    )
    .await;
    let export = serde_json::to_string(&json!([
        {"type": "sgv", "sgv": 131, "date": (Utc::now() - Duration::days(3)).timestamp_millis()}
    ]))
    .expect("JSON");
    let upload = |who: &'static str, route: &'static str| {
        let token = w.tokens.get(who).cloned().unwrap_or_default();
        let url = w
            .server
            .http_url(&format!("/v1/patients/{p}/{route}?format=nightscout"));
        let body = export.clone();
        let http = w.server.http();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("upload");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let glucose_rows = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM glucose_samples g JOIN devices d ON d.key = g.device_key
              WHERE d.patient_id = $1",
        )
        .bind(p)
        .fetch_one(&w.db.pool)
        .await
        .expect("count")
    };
    let stored_before = glucose_rows().await;
    for route in ["imports/preview", "imports"] {
        for (who, want) in [
            ("clinician", StatusCode::NOT_FOUND),
            ("other_org_clinician", StatusCode::NOT_FOUND),
            ("caregiver", StatusCode::NOT_FOUND),
            ("researcher", StatusCode::NOT_FOUND),
            ("admin", StatusCode::NOT_FOUND),
        ] {
            let logged_before = w.log_len().await;
            let (status, body) = upload(who, route).await;
            assert_eq!(status, want, "{who} POST {route}: {body}");
            assert!(body.get("stored").is_none() && body.get("refused").is_none());
            assert_eq!(w.log_len().await, logged_before + 1, "{who} {route} logged");
            assert_ne!(w.last_outcome().await, "allowed");
        }
        let (status, _) = w
            .api
            .call(
                None,
                Method::POST,
                &format!("/v1/patients/{p}/{route}?format=nightscout"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous {route}");
    }
    assert_eq!(
        glucose_rows().await,
        stored_before,
        "nothing refused was stored"
    );

    // Another patient's importer cannot reach this record either.
    let other = w.other_patient;
    let (status, _) = w
        .call(
            "guardian",
            Method::POST,
            &format!("/v1/patients/{other}/imports?format=nightscout"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the guardian of another patient"
    );

    for (who, route) in [("patient", "imports/preview"), ("guardian", "imports")] {
        let logged_before = w.log_len().await;
        let (status, body) = upload(who, route).await;
        assert_eq!(status, StatusCode::OK, "{who} POST {route}: {body}");
        assert_eq!(w.log_len().await, logged_before + 1, "{who} {route} logged");
        assert_eq!(w.last_outcome().await, "allowed");
    }
    assert_eq!(
        glucose_rows().await,
        stored_before + 1,
        "the guardian's import"
    );

    // The FHIR submission names its patient inside the Bundle: the same rule.
    let submission = |at: DateTime<Utc>| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
                "subject": {"reference": format!("Patient/{p}")},
                "effectiveDateTime": at.to_rfc3339(),
                "valueQuantity": {"value": 140, "unit": "mg/dL",
                    "system": "http://unitsofmeasure.org", "code": "mg/dL"}},
            "request": {"method": "POST", "url": "Observation"}}]})
    };
    let route = "/v1/fhir/$submit-cgm-bundle";
    let stored_before = glucose_rows().await;
    for who in [
        "clinician",
        "other_org_clinician",
        "caregiver",
        "researcher",
        "admin",
    ] {
        let logged_before = w.log_len().await;
        let (status, body) = w
            .call(
                who,
                Method::POST,
                route,
                Some(submission(Utc::now() - Duration::days(2))),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who} submits: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(
            w.log_len().await,
            logged_before + 1,
            "{who} submission logged"
        );
        assert_ne!(w.last_outcome().await, "allowed");
    }
    let (status, _) = w
        .api
        .call(None, Method::POST, route, Some(submission(Utc::now())))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous submission");
    assert_eq!(
        glucose_rows().await,
        stored_before,
        "nothing refused was stored"
    );
    for (who, minutes) in [("patient", 10), ("guardian", 20)] {
        let logged_before = w.log_len().await;
        let at = Utc::now() - Duration::days(2) + Duration::minutes(minutes);
        let (status, body) = w.call(who, Method::POST, route, Some(submission(at))).await;
        assert_eq!(status, StatusCode::OK, "{who} submits: {body}");
        assert_eq!(
            body["entry"][0]["response"]["status"], "201 Created",
            "{body}"
        );
        assert_eq!(
            w.log_len().await,
            logged_before + 1,
            "{who} submission logged"
        );
        assert_eq!(w.last_outcome().await, "allowed");
    }
    assert_eq!(glucose_rows().await, stored_before + 2);
}
