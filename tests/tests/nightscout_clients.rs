//! The Nightscout front door driven by clients no one here wrote: an uploader
//! (minimed-connect-to-nightscout's own upload function, from npm) and a follower library
//! (py-nightscout, from PyPI, which Home Assistant uses), each against a real
//! `chronicle serve`; and the requests xDrip+, AndroidAPS and Loop send, replayed from
//! `tests/fixtures/nightscout`. Uploads go through the ingest (stored once, refusals
//! recorded); reads go through the gate with a share link's token (logged under its name;
//! trends-only reads no entries; revoked stops on the next request).
//!
//! Needs Node.js with `tests/nightscout-clients` installed (`npm ci` there) and
//! `CHRONICLE_TEST_PYTHON` with py-nightscout; `scripts/test` sets both up.

use chronicle_domain::sharing::Role;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice, create_user};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::path::PathBuf;
use std::process::Command;
use uuid::Uuid;

const PASSWORD: &str = "nightscout test password";

fn sha1_hex(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nightscout-clients")
}

/// Runs a client to completion off the test's runtime thread: the server's pool holds
/// connections this runtime opened, which must keep being served while the client waits.
async fn run_client(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the client runs"))
        .await
        .expect("the client's thread")
}

/// Uploads `entries` with minimed-connect-to-nightscout's upload function; returns what the
/// bridge reported (`{"status": …}` or `{"error": …}`).
async fn bridge_upload(endpoint: &str, secret: &str, entries: &Value) -> Value {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules/minimed-connect-to-nightscout")
            .is_dir(),
        "the npm clients are not installed: run `npm ci` in {} (scripts/test does)",
        dir.display()
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), entries.to_string()).expect("write entries");
    let mut command = Command::new("node");
    command
        .current_dir(&dir)
        .arg("upload.js")
        .args([endpoint, secret])
        .arg(file.path());
    let out = run_client(command).await;
    assert!(
        out.status.success(),
        "upload.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("upload.js prints JSON")
}

/// Follows the site with py-nightscout; returns what the library understood or its error.
async fn follow(site_url: &str, token: &str) -> Value {
    let python = std::env::var("CHRONICLE_TEST_PYTHON").expect(
        "CHRONICLE_TEST_PYTHON must name a Python with py-nightscout==1.3.3 (scripts/test sets it up)",
    );
    let out = Command::new(python)
        .arg(format!(
            "{}/nightscout_follow.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([site_url, token])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "nightscout_follow.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nightscout_follow.py prints JSON")
}

/// A fixture with its relative times made absolute (see tests/fixtures/nightscout/README.md).
fn resolve_times(value: &mut Value, field: Option<&str>, now: DateTime<Utc>) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                resolve_times(v, Some(name), now);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve_times(v, field, now)),
        Value::String(s) => {
            if let Some(minutes) = s
                .strip_prefix("@now-")
                .and_then(|m| m.strip_suffix('m'))
                .and_then(|m| m.parse::<i64>().ok())
            {
                let at = now - Duration::minutes(minutes);
                *value = match field {
                    Some("date" | "mills") => json!(at.timestamp_millis()),
                    _ => json!(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
                };
            }
        }
        _ => {}
    }
}

/// Replays one fixture file's requests against the site, its times relative to `now`; every
/// one must answer 200.
async fn replay(
    http: &reqwest::Client,
    (site_url, digest): (&str, &str),
    fixture: &str,
    now: DateTime<Utc>,
) {
    let path = format!(
        "{}/fixtures/nightscout/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON");
    resolve_times(&mut file, None, now);
    for request in file["requests"].as_array().expect("requests") {
        let method = Method::from_bytes(request["method"].as_str().expect("method").as_bytes())
            .expect("method");
        let url = format!("{site_url}{}", request["path"].as_str().expect("path"));
        let mut builder = http.request(method, &url);
        for (name, value) in request["headers"].as_object().expect("headers") {
            let value = value
                .as_str()
                .expect("header")
                .replace("{api-secret}", digest);
            builder = builder.header(name.as_str(), value);
        }
        let response = builder
            .body(request["body"].to_string())
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "{fixture}: {url}: {body}");
    }
}

struct Site {
    app: TestApp,
    db: TestDatabase,
    api: ApiClient,
    patient: Uuid,
    token: String,
    site_url: String,
    api_secret: String,
    uploader_id: String,
}

async fn site() -> Site {
    let db = TestDatabase::create().await.expect("database");
    let app = TestApp::launch(&db, &[]).await.expect("server");
    // The test's own pool: the server's pool keeps to the server's runtime.
    let store = Store::from_pool(db.pool.clone());
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Noor".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient")
        .id;
    create_user(
        &store,
        "noor@example.org",
        Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let api = ApiClient::new(&app);
    let token = api.login("noor@example.org", PASSWORD).await;
    let (status, created) = api
        .call(
            Some(&token),
            Method::POST,
            &format!("/v1/patients/{patient}/nightscout/uploaders"),
            Some(json!({"label": "phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["device"]["kind"], "uploader");
    let site_url = app.http_url(created["site_path"].as_str().expect("site path"));
    Site {
        api_secret: created["api_secret"].as_str().expect("secret").to_owned(),
        uploader_id: created["device"]["device_id"]
            .as_str()
            .expect("id")
            .to_owned(),
        app,
        db,
        api,
        patient,
        token,
        site_url,
    }
}

/// A share link of the patient's; returns (link id, token).
async fn share_link(s: &Site, name: &str, access: &str) -> (String, String) {
    let (status, created) = s
        .api
        .call(
            Some(&s.token),
            Method::POST,
            &format!("/v1/patients/{}/share-links", s.patient),
            Some(json!({
                "name": name,
                "categories": ["glucose", "treatments"],
                "access": [access],
                "expires_at": (Utc::now() + Duration::days(2)).to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["link"]["id"].as_str().expect("id").to_owned(),
        created["token"].as_str().expect("token").to_owned(),
    )
}

fn sgv_entries(values: &[(i64, u32)]) -> Value {
    // As the bridge's transform writes them: mg/dL, epoch milliseconds, its device name.
    Value::Array(
        values
            .iter()
            .map(|(minutes_ago, sgv)| {
                let at = Utc::now() - Duration::minutes(*minutes_ago);
                json!({"sgv": sgv, "date": at.timestamp_millis(),
                       "dateString": at.to_rfc3339(), "device": "connect://paradigm",
                       "type": "sgv", "direction": "Flat"})
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_real_uploader_and_a_real_follower_use_a_patients_site() {
    let s = site().await;
    let entries_endpoint = format!("{}/api/v1/entries.json", s.site_url);

    // The bridge uploads five readings; uploading them again stores nothing twice.
    let readings = sgv_entries(&[(25, 110), (20, 118), (15, 127), (10, 139), (5, 151)]);
    for _ in 0..2 {
        let reported = bridge_upload(&entries_endpoint, &s.api_secret, &readings).await;
        assert_eq!(reported["status"], 200, "{reported}");
    }
    assert_eq!(s.db.count("glucose_samples").await, 5);

    // An out-of-range value: the bridge reports the refusal, and it is recorded.
    let reported =
        bridge_upload(&entries_endpoint, &s.api_secret, &sgv_entries(&[(3, 2000)])).await;
    let error = reported["error"]
        .as_str()
        .expect("the bridge reports an error");
    assert!(error.contains("out_of_range"), "{error}");
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rejected_readings WHERE reason = 'out_of_range'")
            .fetch_one(&s.db.pool)
            .await
            .expect("count");
    assert_eq!(refused, 1);
    assert_eq!(s.db.count("glucose_samples").await, 5);

    // A malformed body, a wrong secret, and a share link's token cannot upload; each error
    // is in Nightscout's shape.
    let http = reqwest::Client::new();
    let post = |body: &'static str, secret: String| {
        http.post(&entries_endpoint)
            .header("api-secret", secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post("{not json", sha1_hex(&s.api_secret))
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], 400, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let response = post("[]", sha1_hex("not the secret")).await.expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The upload credential has no MQTT login, whatever it presents.
    for password in [s.api_secret.clone(), sha1_hex(&s.api_secret)] {
        assert!(
            TestDevice::connect(s.app.mqtt_port(), &s.uploader_id, Some(&password))
                .await
                .is_err(),
            "an uploader must not log in to MQTT"
        );
    }

    // Nothing is readable without a share link.
    let response = http.get(&entries_endpoint).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A follower with a readings link: py-nightscout sees the site, the values and arrows.
    let (link_id, follower) = share_link(&s, "Grandma's phone", "view_readings").await;
    let followed = follow(&s.site_url, &follower).await;
    assert_eq!(followed["status"]["name"], "Chronicle", "{followed}");
    assert_eq!(followed["status"]["units"], "mg/dl", "{followed}");
    let sgvs: Vec<i64> = followed["sgvs"]
        .as_array()
        .expect("sgvs")
        .iter()
        .filter_map(|e| e["sgv"].as_i64())
        .collect();
    assert_eq!(sgvs, [151, 139, 127, 118, 110], "{followed}");
    assert_eq!(followed["sgvs"][0]["delta"], 12.0, "{followed}");
    // 12 mg/dL in 5 minutes: 2.4 mg/dL a minute.
    assert_eq!(followed["sgvs"][0]["direction"], "SingleUp", "{followed}");

    // The same token in the query, with Nightscout's find operators and count.
    let since = (Utc::now() - Duration::minutes(17)).timestamp_millis();
    let found: Value = http
        .get(format!(
            "{}/api/v1/entries/sgv.json?token={follower}&count=2&find[date][$gte]={since}",
            s.site_url
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let found: Vec<i64> = found
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["sgv"].as_i64())
        .collect();
    assert_eq!(found, [151, 139]);
    let current: Value = http
        .get(format!(
            "{}/api/v1/entries/current.json?token={follower}",
            s.site_url
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(current[0]["sgv"], 151, "{current}");

    // Every read is in the patient's access log under the link's name.
    let log = s
        .api
        .get_ok(
            &s.token,
            &format!("/v1/patients/{}/access-log?limit=100", s.patient),
        )
        .await;
    let link_reads: Vec<&Value> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["actor_id"] == link_id.as_str())
        .collect();
    assert!(link_reads.len() >= 4, "{log}");
    assert!(
        link_reads
            .iter()
            .all(|e| e["actor_name"] == "Grandma's phone"
                && e["actor_role"] == "share_link"
                && e["outcome"] == "allowed")
    );

    // A trends-only link reads no entries, on the site or the browser route, but its trend.
    let (_, trends_only) = share_link(&s, "School nurse", "view_trends").await;
    let followed = follow(&s.site_url, &trends_only).await;
    assert_eq!(followed["status_code"], 403, "{followed}");
    let (status, _) = s
        .api
        .call(
            None,
            Method::GET,
            &format!("/v1/shared/{trends_only}/glucose"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, trend) = s
        .api
        .call(
            None,
            Method::GET,
            &format!("/v1/shared/{trends_only}/trends/glucose?days=1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trend}");
    assert_eq!(trend["individual_readings"], false);

    // The readings link works in a browser, and stops on the next request once revoked.
    let (status, page) = s
        .api
        .call(
            None,
            Method::GET,
            &format!("/v1/shared/{follower}/glucose"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    let (status, revoked) = s
        .api
        .call(
            Some(&s.token),
            Method::DELETE,
            &format!("/v1/patients/{}/share-links/{link_id}", s.patient),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["active"], false);
    assert_eq!(follow(&s.site_url, &follower).await["status_code"], 401);
    let (status, _) = s
        .api
        .call(
            None,
            Method::GET,
            &format!("/v1/shared/{follower}/glucose"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Revoking the upload credential stops uploads at once.
    let (status, _) = s
        .api
        .call(
            Some(&s.token),
            Method::DELETE,
            &format!("/v1/patients/{}/devices/{}", s.patient, s.uploader_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reported = bridge_upload(&entries_endpoint, &s.api_secret, &sgv_entries(&[(1, 120)])).await;
    assert!(reported["error"].is_string(), "{reported}");
    assert_eq!(s.db.count("glucose_samples").await, 5);
}

#[tokio::test]
async fn xdrip_androidaps_and_loop_requests_are_stored_once_and_read_back() {
    let s = site().await;
    let digest = sha1_hex(&s.api_secret);
    let http = reqwest::Client::new();
    let now = Utc::now();
    for fixture in ["xdrip.json", "androidaps.json", "loop.json"] {
        replay(&http, (&s.site_url, &digest), fixture, now).await;
    }
    // xDrip's cal record is refused as a type Chronicle does not keep, and recorded.
    let unknown: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rejected_readings WHERE reason = 'unknown_type'")
            .fetch_one(&s.db.pool)
            .await
            .expect("count");
    assert_eq!(unknown, 1);
    // 4 CGM values and xDrip's finger stick; 8 treatments (a meal bolus is two records, and
    // AndroidAPS's zero-rate temporary basal is kept as 0 U of basal).
    assert_eq!(s.db.count("glucose_samples").await, 5);
    assert_eq!(s.db.count("treatment_samples").await, 8);
    // Replayed again: nothing new.
    for fixture in ["xdrip.json", "androidaps.json", "loop.json"] {
        replay(&http, (&s.site_url, &digest), fixture, now).await;
    }
    assert_eq!(s.db.count("glucose_samples").await, 5);
    assert_eq!(s.db.count("treatment_samples").await, 8);

    let page = s
        .api
        .get_ok(&s.token, &format!("/v1/patients/{}/treatments", s.patient))
        .await;
    let suspension = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["kind"] == "basal_insulin" && t["amount"] == 0.0);
    assert!(suspension.is_some(), "the suspension is kept: {page}");

    // A follower reads the treatments back in Nightscout's shape, with find[created_at].
    let (_, follower) = share_link(&s, "Partner", "view_readings").await;
    let since = (Utc::now() - Duration::minutes(26)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let treatments: Value = http
        .get(format!("{}/api/v1/treatments.json", s.site_url))
        .query(&[
            ("find[created_at][$gte]", since.as_str()),
            ("token", follower.as_str()),
        ])
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let events: Vec<&str> = treatments
        .as_array()
        .expect("treatments")
        .iter()
        .filter_map(|t| t["eventType"].as_str())
        .collect();
    // Newest first: xDrip's meal bolus (two records, 20 minutes ago), then Loop's three (23,
    // 24 and 25 minutes ago).
    assert_eq!(
        events,
        [
            "Carb Correction",
            "Correction Bolus",
            "Carb Correction",
            "Correction Bolus",
            "Temp Basal"
        ],
        "{treatments}"
    );
    let followed = follow(&s.site_url, &follower).await;
    assert!(
        followed["treatments"]
            .as_array()
            .is_some_and(|t| t.len() == 8),
        "{followed}"
    );
}
