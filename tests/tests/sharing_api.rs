//! The sharing rules through the HTTP API of a running server: default deny, grants to a
//! care team, trends-only, windows, revocation on the next request, and the access log.
//! (The full authorization matrix over every endpoint grows with the sharing work.)

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_domain::topics;
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::NewUser;
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::readers::run_reader;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

struct Clinic {
    _db: TestDatabase,
    server: TestApp,
    store: Store,
    patient: Uuid,
    team: Uuid,
    api: ApiClient,
}

const PASSWORD: &str = "a long test password";

async fn clinic() -> Clinic {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Pat Example".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .await
        .expect("patient");
    let hash = hash_password(PASSWORD).expect("hash");
    store
        .create_user(&NewUser {
            email: "pat@example.org".into(),
            display_name: "Pat".into(),
            role: Role::Patient,
            password_hash: Some(hash.clone()),
            patient_id: Some(patient.id),
        })
        .await
        .expect("patient user");
    let org = store
        .create_organization("North Clinic")
        .await
        .expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes team")
        .await
        .expect("team");
    let lee = store
        .create_user(&NewUser {
            email: "lee@clinic.example".into(),
            display_name: "Dr. Lee".into(),
            role: Role::Clinician,
            password_hash: Some(hash),
            patient_id: None,
        })
        .await
        .expect("clinician");
    store
        .add_team_member(team.id, lee.id)
        .await
        .expect("member");

    // Readings 3 days, 2 days and 1 hour old, through the real ingest.
    let (device_id, secret) = server
        .add_device(&patient.id.to_string(), "cgm")
        .await
        .expect("device");
    let mut cgm = TestDevice::connect(server.mqtt_port(), &device_id, Some(&secret))
        .await
        .expect("connect");
    let readings: Vec<Value> = [72 * 60, 48 * 60, 60]
        .iter()
        .map(|m| json!({"type": "glucose", "value": 100 + m % 50, "unit": "mg/dL", "measured_at": (Utc::now() - Duration::minutes(*m)).to_rfc3339()}))
        .collect();
    assert_eq!(
        cgm.send(json!({"readings": readings}).to_string())
            .await
            .expect("ack")
            .stored,
        3
    );
    Clinic {
        _db: db,
        api: ApiClient::new(&server),
        server,
        store,
        patient: patient.id,
        team: team.id,
    }
}

impl Clinic {
    async fn login(&self, email: &str) -> String {
        self.api.login(email, PASSWORD).await
    }

    async fn glucose(&self, token: &str, patient: Uuid, query: &str) -> (StatusCode, Value) {
        let path = format!("/v1/patients/{patient}/glucose{query}");
        self.api.call(Some(token), Method::GET, &path, None).await
    }

    async fn grant(&self, access: &[Access], data_since: Option<chrono::DateTime<Utc>>) -> Uuid {
        self.store
            .create_grant(&NewGrant {
                patient_id: self.patient,
                grantee: Grantee::CareTeam(self.team),
                categories: [DataCategory::Glucose].into(),
                access: access.iter().copied().collect(),
                purpose: Purpose::Care,
                data_since,
                expires_at: Some(Utc::now() + Duration::days(30)),
                created_by: None,
            })
            .await
            .expect("grant")
            .id
    }
}

#[tokio::test]
async fn sharing_through_the_api() {
    let c = clinic().await;
    let pat = c.login("pat@example.org").await;
    let lee = c.login("LEE@clinic.example").await;

    // Authentication.
    let (status, body) = c.glucose("chr_bogus", c.patient, "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let wrong = c
        .api
        .http
        .post(c.api.url("/v1/auth/login"))
        .json(&json!({"email": "pat@example.org", "password": "nope"}))
        .send()
        .await
        .expect("login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // The patient sees their own data, in either unit.
    let (status, body) = c.glucose(&pat, c.patient, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3));
    let (_, mmol) = c.glucose(&pat, c.patient, "?unit=mmol/L").await;
    let first_mg = body["items"][0]["value"].as_f64().expect("value");
    let first_mmol = mmol["items"][0]["value"].as_f64().expect("value");
    assert!((first_mg / 18.01559 - first_mmol).abs() < 1e-9);

    // Default deny, and a denied caller cannot tell a real patient from a made-up one.
    let (real, _) = c.glucose(&lee, c.patient, "").await;
    let (made_up, _) = c.glucose(&lee, Uuid::new_v4(), "").await;
    assert_eq!(
        (real, made_up),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );

    // Trends only: the clinician may know the patient now, but gets no readings.
    let trends = c.grant(&[Access::ViewTrends], None).await;
    assert_eq!(
        c.glucose(&lee, c.patient, "").await.0,
        StatusCode::FORBIDDEN
    );
    c.store
        .revoke_grant(c.patient, trends)
        .await
        .expect("revoke")
        .expect("exists");

    // A team grant with a window: readings older than data_since stay hidden.
    let grant = c
        .grant(
            &[Access::ViewReadings],
            Some(Utc::now() - Duration::days(2) - Duration::hours(1)),
        )
        .await;
    let (status, body) = c.glucose(&lee, c.patient, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"].as_array().map(Vec::len),
        Some(2),
        "the 3-day-old reading is outside the window: {body}"
    );
    let (_, asked_earlier) = c
        .glucose(
            &lee,
            c.patient,
            &format!(
                "?from={}",
                (Utc::now() - Duration::days(10))
                    .to_rfc3339()
                    .replace('+', "%2B")
            ),
        )
        .await;
    assert_eq!(
        asked_earlier["items"].as_array().map(Vec::len),
        Some(2),
        "asking for more does not widen the window"
    );

    // Pagination walks the same items.
    let (_, page1) = c.glucose(&lee, c.patient, "?limit=1").await;
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let (_, page2) = c
        .glucose(&lee, c.patient, &format!("?limit=1&cursor={cursor}"))
        .await;
    assert_ne!(
        page1["items"][0]["measured_at"],
        page2["items"][0]["measured_at"]
    );

    // Revocation applies on the very next request.
    c.store
        .revoke_grant(c.patient, grant)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(
        c.glucose(&lee, c.patient, "").await.0,
        StatusCode::NOT_FOUND
    );

    // Every attempt is in the patient's access log, allowed or denied.
    let log = c.store.access_log(c.patient, None, 100).await.expect("log");
    let lee_entries: Vec<_> = log
        .iter()
        .map(|e| &e.attempt)
        .filter(|e| e.actor_role.as_deref() == Some("clinician"))
        .collect();
    assert!(
        lee_entries
            .iter()
            .any(|e| e.allowed && e.grant_id == Some(grant))
    );
    assert!(
        lee_entries
            .iter()
            .any(|e| !e.allowed && e.reason.as_deref() == Some("no_grant"))
    );
    assert!(
        lee_entries
            .iter()
            .any(|e| !e.allowed && e.reason.as_deref() == Some("access_not_granted"))
    );
}

/// The walk-through, with accounts made by the operator's commands and everything
/// else done by the patient and the clinician through the API alone.
#[tokio::test]
async fn a_patient_shares_through_the_api_alone_and_revokes() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let json = |out: String| serde_json::from_str::<Value>(&out).expect("json output");
    let patient = json(
        server
            .admin(&["patient", "add", "--name", "Ada", "--json"])
            .await
            .expect("patient"),
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ada = json(
        server
            .admin(&[
                "user",
                "add",
                "--email",
                "ada@example.org",
                "--name",
                "Ada",
                "--role",
                "patient",
                "--patient",
                &patient,
                "--json",
            ])
            .await
            .expect("user"),
    );
    let org = json(
        server
            .admin(&["org", "add", "--name", "North Clinic", "--json"])
            .await
            .expect("org"),
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let team = json(
        server
            .admin(&[
                "team",
                "add",
                "--org",
                &org,
                "--name",
                "Diabetes team",
                "--json",
            ])
            .await
            .expect("team"),
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let lee = json(
        server
            .admin(&[
                "user",
                "add",
                "--email",
                "lee@north.example",
                "--name",
                "Dr. Lee",
                "--role",
                "clinician",
                "--json",
            ])
            .await
            .expect("user"),
    );
    server
        .admin(&[
            "team",
            "add-member",
            "--team",
            &team,
            "--user",
            lee["id"].as_str().expect("id"),
        ])
        .await
        .expect("member");

    let http = reqwest::Client::new();
    let login = |email: &'static str, password: String| {
        let http = http.clone();
        let url = server.http_url("/v1/auth/login");
        async move {
            let r: Value = http
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("json");
            r["token"].as_str().expect("token").to_owned()
        }
    };
    let ada_token = login(
        "ada@example.org",
        ada["password"]
            .as_str()
            .expect("generated password")
            .to_owned(),
    )
    .await;
    let lee_token = login(
        "lee@north.example",
        lee["password"]
            .as_str()
            .expect("generated password")
            .to_owned(),
    )
    .await;
    let call = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let http = http.clone();
        let url = server.http_url(&path);
        async move {
            let mut request = http.request(method, url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("request");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // Pair a device and send a reading with it.
    let (status, paired) = call(
        reqwest::Method::POST,
        format!("/v1/patients/{patient}/devices"),
        ada_token.clone(),
        Some(json!({"kind": "cgm", "label": "arm sensor"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{paired}");
    let username = paired["mqtt_username"].as_str().expect("user");
    assert_eq!(
        paired["readings_topic"],
        topics::readings_topic(topics::DEFAULT_TOPIC_PREFIX, username)
    );
    assert_eq!(
        paired["acks_topic"],
        topics::acks_topic(topics::DEFAULT_TOPIC_PREFIX, username)
    );
    let mut cgm = TestDevice::connect(
        server.mqtt_port(),
        paired["mqtt_username"].as_str().expect("user"),
        paired["mqtt_password"].as_str(),
    )
    .await
    .expect("the paired device connects");
    let reading = json!({"type": "glucose", "value": 6.1, "unit": "mmol/L", "measured_at": (Utc::now() - Duration::minutes(5)).to_rfc3339()});
    assert_eq!(cgm.send(reading.to_string()).await.expect("ack").stored, 1);

    // `alerts` is not a category: alerts go with the category of their readings.
    let (status, refused) = call(
        reqwest::Method::POST,
        format!("/v1/patients/{patient}/grants"),
        ada_token.clone(),
        Some(
            json!({"grantee": {"type": "care_team", "id": team}, "categories": ["alerts"],
            "access": ["receive_alerts"], "purpose": "care"}),
        ),
    )
    .await;
    assert!(status.is_client_error(), "{status}: {refused}");
    // Grant the care team glucose-only access for 30 days.
    let grant = json!({"grantee": {"type": "care_team", "id": team}, "categories": ["glucose"], "access": ["view_readings"],
        "purpose": "care", "expires_at": (Utc::now() + Duration::days(30)).to_rfc3339()});
    let (status, grant) = call(
        reqwest::Method::POST,
        format!("/v1/patients/{patient}/grants"),
        ada_token.clone(),
        Some(grant),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let (status, readings) = call(
        reqwest::Method::GET,
        format!("/v1/patients/{patient}/glucose"),
        lee_token.clone(),
        None,
    )
    .await;
    assert_eq!(
        (status, readings["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, _) = call(
        reqwest::Method::GET,
        format!("/v1/patients/{patient}/blood-pressure"),
        lee_token.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "glucose only");

    // The patient sees the team's read, revokes, and sees the next read denied.
    let (_, log) = call(
        reqwest::Method::GET,
        format!("/v1/patients/{patient}/access-log"),
        ada_token.clone(),
        None,
    )
    .await;
    let lee_id = lee["id"].as_str().expect("id");
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["actor_id"] == lee_id
                && e["action"] == "read_glucose_readings"
                && e["outcome"] == "allowed")
    );
    let grant_id = grant["id"].as_str().expect("id");
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("/v1/patients/{patient}/grants/{grant_id}"),
        ada_token.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        reqwest::Method::GET,
        format!("/v1/patients/{patient}/glucose"),
        lee_token.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = call(
        reqwest::Method::GET,
        format!("/v1/patients/{patient}/access-log"),
        ada_token,
        None,
    )
    .await;
    let newest_lee = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["actor_id"] == lee_id)
        .cloned()
        .expect("an entry");
    assert_eq!(
        (
            newest_lee["outcome"].as_str(),
            newest_lee["reason"].as_str()
        ),
        (Some("denied"), Some("no_grant"))
    );
}

/// The patient's export validates as FHIR with an independent implementation, the CSV holds
/// every reading, and erasure leaves nothing behind but the access log.
#[tokio::test]
async fn export_validates_as_fhir_and_erasure_removes_everything() {
    let c = clinic().await;
    let pat = c.login("pat@example.org").await;
    let lee = c.login("lee@clinic.example").await;
    let get = |path: String, token: String| {
        let http = c.api.http.clone();
        let url = c.server.http_url(&path);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };
    let fhir = get(
        format!("/v1/patients/{}/export/fhir", c.patient),
        pat.clone(),
    )
    .await;
    assert_eq!(fhir.status(), StatusCode::OK);
    assert_eq!(fhir.headers()["content-type"], "application/fhir+json");
    let bundle: Value = fhir.json().await.expect("json");
    let observations: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Observation")
        .collect();
    assert_eq!(observations.len(), 3);
    assert!(
        observations
            .iter()
            .all(|o| o["code"]["coding"][0]["code"] == "99504-3"
                && o["valueQuantity"]["system"] == "http://unitsofmeasure.org")
    );

    assert_eq!(
        run_reader(
            "fhir_validate.py",
            &serde_json::to_vec(&bundle).expect("bytes")
        )
        .trim(),
        bundle["entry"]
            .as_array()
            .map(|e| e.len().to_string())
            .unwrap_or_default()
    );

    let csv = get(
        format!("/v1/patients/{}/export/csv", c.patient),
        pat.clone(),
    )
    .await
    .text()
    .await
    .expect("csv");
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    assert!(csv.starts_with("kind,measured_at,value,unit"));

    // Only the patient exports or erases.
    assert_eq!(
        get(
            format!("/v1/patients/{}/export/fhir", c.patient),
            lee.clone()
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let erase = |token: String| {
        let http = c.api.http.clone();
        let url = c.server.http_url(&format!("/v1/patients/{}", c.patient));
        async move {
            http.delete(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    assert_eq!(erase(lee.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(erase(pat.clone()).await, StatusCode::NO_CONTENT);
    for table in ["glucose_readings", "devices", "grants", "patients"] {
        assert_eq!(c._db.count(table).await, 0, "{table} after erasure");
    }
    assert!(
        c._db.count("access_log").await > 0,
        "the access log is kept"
    );
    assert_eq!(
        get(format!("/v1/patients/{}/glucose", c.patient), pat)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the erased patient's sessions end"
    );
}

/// Erasure takes the patient's identity with the record: the account keeps only a tombstone,
/// its e-mail is free for a new account, and only the patient erases — a guardian only a
/// record whose patient has no account of their own (a child's).
#[tokio::test]
async fn erasure_removes_identity_and_is_the_patients_decision() {
    let c = clinic().await;
    let hash = hash_password(PASSWORD).expect("hash");
    let guardian = c
        .store
        .create_user(&NewUser {
            email: "parent@example.org".into(),
            display_name: "Parent".into(),
            role: Role::Caregiver,
            password_hash: Some(hash.clone()),
            patient_id: None,
        })
        .await
        .expect("guardian");
    c.store
        .add_guardian(c.patient, guardian.id)
        .await
        .expect("named guardian");
    let child = c
        .store
        .create_patient(&NewPatient {
            display_name: "Kid Example".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .await
        .expect("child");
    c.store
        .add_guardian(child.id, guardian.id)
        .await
        .expect("guardian of the child");
    let parent = c.login("parent@example.org").await;
    let erase = |patient: Uuid, token: String| {
        let api = &c.api;
        async move {
            api.call(
                Some(&token),
                Method::DELETE,
                &format!("/v1/patients/{patient}"),
                None,
            )
            .await
        }
    };

    // A guardian cannot erase the record of a patient who has an account of their own.
    let (status, body) = erase(c.patient, parent.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("only they can")),
        "{body}"
    );
    assert_eq!(c._db.count("patients").await, 2, "nothing was erased");
    // A child's record, with no account of its own, the guardian may erase.
    let (status, body) = erase(child.id, parent).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The patient erases: their name, e-mail and password go with the record.
    let pat = c.login("pat@example.org").await;
    let (status, body) = erase(c.patient, pat).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (emails, names): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE email ILIKE '%pat@example.org%'),
                count(*) FILTER (WHERE display_name ILIKE '%pat%')
         FROM users",
    )
    .fetch_one(&c._db.pool)
    .await
    .expect("users");
    assert_eq!(
        (emails, names),
        (0, 0),
        "no trace of the person in the accounts"
    );
    let logins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM authentication_events e JOIN users u ON u.id = e.user_id
         WHERE u.display_name = 'erased'",
    )
    .fetch_one(&c._db.pool)
    .await
    .expect("authentication events");
    assert_eq!(logins, 0, "nor of where and when they logged in");
    let hashes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE password_hash IS NOT NULL AND patient_id IS NULL
             AND role = 'patient'",
    )
    .fetch_one(&c._db.pool)
    .await
    .expect("hashes");
    assert_eq!(hashes, 0, "the tombstone holds no password");
    // A taken e-mail is refused with a clear word, not a server error.
    c.store
        .create_user(&NewUser {
            email: "admin@clinic.example".into(),
            display_name: "Admin".into(),
            role: Role::Admin,
            password_hash: Some(hash),
            patient_id: None,
        })
        .await
        .expect("admin");
    let admin_token = c.login("admin@clinic.example").await;
    // The e-mail is free: an administrator may give it to a new account.
    let (status, body) = c
        .api
        .call(
            Some(&admin_token),
            Method::POST,
            "/v1/admin/users",
            Some(
                json!({"email": "pat@example.org", "display_name": "Pat Again", "role": "caregiver",
                "password": "a fresh start with another password"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = c
        .api
        .call(
            Some(&admin_token),
            Method::POST,
            "/v1/admin/users",
            Some(
                json!({"email": "PAT@example.org", "display_name": "Dup", "role": "caregiver",
                "password": "another long password for the duplicate"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("exists")),
        "{body}"
    );
}
