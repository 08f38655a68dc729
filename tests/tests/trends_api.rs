//! Trends and the panel through a running server: readings sent over MQTT, rollups caught up
//! by the server's own trends consumer, figures checked against hand-computed values, a late
//! backfill updating the rollups, a zone change rebuilding them, and the panel's order,
//! filters, pages and trends-only limits.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::NewUser;
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::trends::TRENDS_CONSUMER;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::{TestApp, TestDatabase, TestDevice, eventually};
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration as StdDuration;
use uuid::Uuid;

const PASSWORD: &str = "a long test password";

struct World {
    db: TestDatabase,
    server: TestApp,
    store: Store,
    http: reqwest::Client,
    token: String,
}

impl World {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.server.http_url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Waits until the server's trends consumer has taken everything queued.
    async fn caught_up(&self) {
        eventually(
            StdDuration::from_secs(30),
            "trend rollups to catch up",
            || async {
                let queued = self
                    .store
                    .pending_followups(TRENDS_CONSUMER)
                    .await
                    .expect("count");
                let rebuilds: i64 = sqlx::query_scalar("SELECT count(*) FROM trend_rebuilds")
                    .fetch_one(&self.db.pool)
                    .await
                    .expect("count");
                (queued == 0 && rebuilds == 0).then_some(())
            },
        )
        .await;
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn patient(store: &Store, name: &str, zone: &str) -> Uuid {
    store
        .create_patient(&NewPatient {
            display_name: name.into(),
            time_zone: zone.into(),
        })
        .await
        .expect("patient")
        .id
}

async fn grant(store: &Store, patient: Uuid, team: Uuid, access: Access) {
    store
        .create_grant(&NewGrant {
            patient_id: patient,
            grantee: Grantee::CareTeam(team),
            categories: [DataCategory::Glucose, DataCategory::BloodPressure].into(),
            access: [access].into(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
}

fn close(actual: &Value, expected: f64, what: &str) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {actual}"));
    assert!(
        (a - expected).abs() < 1e-6,
        "{what}: {a} instead of {expected}"
    );
}

#[tokio::test]
async fn trends_and_the_panel_end_to_end() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let ada = patient(&store, "Ada", "Europe/Berlin").await;
    let bo = patient(&store, "Bo", "UTC").await;
    let cy = patient(&store, "Cy", "America/New_York").await;
    let di = patient(&store, "Di", "UTC").await;
    let org = store.create_organization("Clinic").await.expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes")
        .await
        .expect("team");
    let lee = store
        .create_user(&NewUser {
            email: "lee@clinic.example".into(),
            display_name: "Dr. Lee".into(),
            role: Role::Clinician,
            password_hash: Some(hash_password(PASSWORD).expect("hash")),
            patient_id: None,
        })
        .await
        .expect("clinician");
    store
        .add_team_member(team.id, lee.id)
        .await
        .expect("member");
    grant(&store, ada, team.id, Access::ViewReadings).await;
    grant(&store, bo, team.id, Access::ViewTrends).await;
    grant(&store, cy, team.id, Access::ViewReadings).await;
    grant(&store, di, team.id, Access::ViewTrends).await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(server.http_url("/v1/auth/login"))
        .json(&json!({"email": "lee@clinic.example", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let w = World {
        token: login["token"].as_str().expect("token").to_owned(),
        db,
        server,
        store,
        http,
    };

    // Ada: three days of 5-minute CGM readings ending 5 minutes ago, every 12th at 60 mg/dL,
    // the rest at 120.
    let now = Utc::now()
        .duration_trunc(Duration::minutes(5))
        .expect("truncate");
    let start = now - Duration::days(3);
    let ada_readings: Vec<(DateTime<Utc>, f64)> = (0..864)
        .map(|k| {
            let value = if k % 12 == 0 { 60.0 } else { 120.0 };
            (start + Duration::minutes(5 * k), value)
        })
        .collect();
    let (cgm_id, cgm_secret) = w
        .server
        .add_device(&ada.to_string(), "cgm")
        .await
        .expect("device");
    let mut ada_cgm = TestDevice::connect(w.server.mqtt_port(), &cgm_id, Some(&cgm_secret))
        .await
        .expect("connect");
    ada_cgm.send_glucose(&ada_readings, "cgm").await;

    // Bo: two days, 30 minutes at 45 mg/dL every 4 hours, 100 otherwise.
    let bo_start = now - Duration::days(2);
    let bo_readings: Vec<(DateTime<Utc>, f64)> = (0..576)
        .map(|k| {
            let value = if k % 48 < 6 { 45.0 } else { 100.0 };
            (bo_start + Duration::minutes(5 * k), value)
        })
        .collect();
    let (bo_id, bo_secret) = w
        .server
        .add_device(&bo.to_string(), "cgm")
        .await
        .expect("device");
    let mut bo_cgm = TestDevice::connect(w.server.mqtt_port(), &bo_id, Some(&bo_secret))
        .await
        .expect("connect");
    bo_cgm.send_glucose(&bo_readings, "cgm").await;

    // Cy: a meter, four checks a day at 150 mg/dL.
    let (meter_id, meter_secret) = w
        .server
        .add_device(&cy.to_string(), "meter")
        .await
        .expect("device");
    let mut meter = TestDevice::connect(w.server.mqtt_port(), &meter_id, Some(&meter_secret))
        .await
        .expect("connect");
    let cy_readings: Vec<(DateTime<Utc>, f64)> = (0..12)
        .map(|k| (now - Duration::hours(3 + 6 * k), 150.0))
        .collect();
    meter.send_glucose(&cy_readings, "meter").await;

    // Ada's cuff: 07:00 and 21:00 Berlin time (06:00Z and 20:00Z in winter) on the last 8
    // days, 140/88 in the morning and 130/80 in the evening.
    let (cuff_id, cuff_secret) = w
        .server
        .add_device(&ada.to_string(), "bp")
        .await
        .expect("device");
    let mut cuff = TestDevice::connect(w.server.mqtt_port(), &cuff_id, Some(&cuff_secret))
        .await
        .expect("connect");
    let today = now.date_naive();
    let mut bp = Vec::new();
    for day in 1..=8 {
        let date = today - chrono::Days::new(day);
        for (hour, systolic, diastolic) in [(6, 140, 88), (20, 130, 80)] {
            let at = date.and_hms_opt(hour, 0, 0).expect("time").and_utc();
            bp.push(json!({"type": "blood_pressure", "systolic": systolic,
                           "diastolic": diastolic, "pulse": 70, "measured_at": stamp(at)}));
        }
    }
    let ack = cuff
        .send(json!({ "readings": bp }).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 16, "{ack:?}");

    w.caught_up().await;
    let rolled: i64 = sqlx::query_scalar("SELECT count(*) FROM glucose_days WHERE patient_id = $1")
        .bind(ada)
        .fetch_one(&w.db.pool)
        .await
        .expect("count");
    assert!(rolled >= 3, "Ada's days are rolled up: {rolled}");

    // Ada's glucose trend, by hand: 864 readings, mean (72 × 60 + 792 × 120) / 864 = 115;
    // 72 low readings of 5 minutes each; every reading covers 5 minutes but the last, which
    // covers its capped 15 minutes (part of them may fall after the window near midnight).
    let trend = w
        .ok(&format!("/v1/patients/{ada}/trends/glucose?days=5"))
        .await;
    let m = &trend["metrics"];
    assert_eq!(m["readings"], 864, "{m}");
    assert_eq!(m["cgm_readings"], 864);
    close(&m["mean"], 115.0, "mean");
    let data_minutes = m["data_minutes"].as_f64().expect("minutes");
    assert!((4315.0..=4330.0).contains(&data_minutes), "{data_minutes}");
    close(
        &m["time_low_percent"],
        360.0 / data_minutes * 100.0,
        "time low",
    );
    close(
        &m["time_in_range_percent"],
        (data_minutes - 360.0) / data_minutes * 100.0,
        "time in range",
    );
    close(&m["time_very_low_percent"], 0.0, "time very low");
    let sd = ((72.0 * 55.0f64.powi(2) + 792.0 * 5.0f64.powi(2)) / 863.0).sqrt();
    close(&m["sd"], sd, "sd");
    close(&m["cv_percent"], sd / 115.0 * 100.0, "cv");
    close(&m["gmi_percent"], 3.31 + 0.02392 * 115.0, "gmi");
    assert_eq!(m["sufficient"], false);
    assert_eq!(trend["time_zone"], "Europe/Berlin");
    assert_eq!(trend["daily"].as_array().map(Vec::len), Some(5));
    assert_eq!(trend["individual_readings"], true);
    let bins = trend["agp"]["bins"].as_array().expect("bins");
    assert_eq!(bins.len(), 96);
    let agp_readings: i64 = bins.iter().filter_map(|b| b["readings"].as_i64()).sum();
    assert_eq!(agp_readings, 864);
    // Single 5-minute lows are no episodes.
    assert_eq!(trend["episodes"].as_array().map(Vec::len), Some(0));
    // The same in mmol/L.
    let mmol = w
        .ok(&format!(
            "/v1/patients/{ada}/trends/glucose?days=5&unit=mmol/L"
        ))
        .await;
    close(&mmol["metrics"]["mean"], 115.0 / 18.01559, "mean in mmol/L");
    assert_eq!(mmol["unit"], "mmol/L");
    close(
        &mmol["targets"]["range_low"],
        70.0 / 18.01559,
        "range in mmol/L",
    );

    // Ada's blood pressure: mean 135/84 → stage 2 at home (systolic ≥ 135); the 7-day
    // protocol finds the last 7 complete days and discards the first.
    let bp = w
        .ok(&format!("/v1/patients/{ada}/trends/blood-pressure?days=10"))
        .await;
    let m = &bp["metrics"];
    assert_eq!(m["readings"], 16, "{bp}");
    close(&m["mean_systolic"], 135.0, "mean systolic");
    close(&m["mean_diastolic"], 84.0, "mean diastolic");
    assert_eq!(m["category"], "stage_2");
    close(&m["morning"]["systolic"], 140.0, "morning");
    close(&m["evening"]["diastolic"], 80.0, "evening");
    close(&m["at_or_above_135_85_percent"], 50.0, "share ≥ 135/85");
    close(&m["at_or_above_130_80_percent"], 100.0, "share ≥ 130/80");
    close(&m["pulse"]["mean"], 70.0, "pulse");
    let protocol = &bp["home_protocol"];
    assert_eq!(protocol["morning"]["readings"], 6, "{protocol}");
    assert_eq!(protocol["category"], "stage_2");
    assert_eq!(
        protocol["last_day"],
        json!((today - chrono::Days::new(1)).to_string())
    );

    // Bo (trends only): six 30-minute very-low episodes a day; their times of nadir hidden.
    let bo_trend = w
        .ok(&format!("/v1/patients/{bo}/trends/glucose?days=3"))
        .await;
    assert_eq!(bo_trend["individual_readings"], false);
    let episodes = bo_trend["episodes"].as_array().expect("episodes");
    let very_low: Vec<&Value> = episodes
        .iter()
        .filter(|e| e["kind"] == "very_low")
        .collect();
    assert_eq!(very_low.len(), 12, "{episodes:?}");
    for e in &very_low {
        close(&e["duration_minutes"], 30.0, "episode length");
        close(&e["extreme"], 45.0, "nadir");
        assert!(e["extreme_at"].is_null(), "trends only: {e}");
    }

    // The panel: riskiest first (Bo: below 54; Ada: below 70; Di: no data; Cy: nothing).
    let panel = w.ok("/v1/panel").await;
    let names: Vec<&str> = panel["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["display_name"].as_str())
        .collect();
    assert_eq!(names, ["Bo", "Ada", "Di", "Cy"], "{panel}");
    let item = |name: &str| {
        panel["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["display_name"] == name)
            .cloned()
            .expect("listed")
    };
    let bo_row = item("Bo");
    assert_eq!(bo_row["access"]["glucose"], "trends");
    assert_eq!(
        bo_row["flags"],
        json!(["below_54", "below_range", "low_wear"])
    );
    let latest = &bo_row["glucose"]["latest"];
    assert!(latest["age_minutes"].as_i64().is_some(), "{latest}");
    assert!(
        latest["value"].is_null() && latest["measured_at"].is_null(),
        "trends only shows no reading: {latest}"
    );
    let ada_row = item("Ada");
    assert_eq!(ada_row["glucose"]["latest"]["value"], 120.0);
    assert_eq!(ada_row["blood_pressure"]["category"], "stage_2");
    assert!(
        ada_row["flags"]
            .as_array()
            .expect("flags")
            .contains(&json!("bp_stage_2"))
    );
    assert_eq!(item("Di")["flags"], json!(["no_data"]));
    assert_eq!(item("Cy")["flags"], json!([]));
    assert_eq!(item("Cy")["glucose"]["readings"], 12);
    assert!(
        item("Cy")["glucose"]["cgm_active_percent"].is_null(),
        "a meter user has no sensor wear"
    );
    // Every patient's reads are in their access log.
    for id in [ada, bo, cy, di] {
        let logged: Vec<(String, i64)> = sqlx::query_as(
            "SELECT action, count(*) FROM access_log
             WHERE patient_id = $1 AND action LIKE 'read_panel%'
             GROUP BY action ORDER BY action",
        )
        .bind(id)
        .fetch_all(&w.db.pool)
        .await
        .expect("count");
        assert_eq!(
            logged,
            [
                ("read_panel".to_owned(), 2),
                ("read_panel_alerts".to_owned(), 2)
            ],
            "one entry per category, for trends and for alerts"
        );
    }
    // Filters, sorting, pages.
    let below = w.ok("/v1/panel?flag=below_54,bp_crisis").await;
    assert_eq!(below["total"], 1);
    assert_eq!(below["items"][0]["display_name"], "Bo");
    let calm = w.ok("/v1/panel?flagged=false").await;
    assert_eq!(calm["items"][0]["display_name"], "Cy");
    let by_name = w.ok("/v1/panel?sort=name&limit=3").await;
    assert_eq!(by_name["items"][0]["display_name"], "Ada");
    assert_eq!(by_name["items"].as_array().map(Vec::len), Some(3));
    let cursor = by_name["next_cursor"].as_str().expect("a next page");
    let rest = w
        .ok(&format!("/v1/panel?sort=name&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["display_name"], "Di");
    assert!(rest["next_cursor"].is_null());
    let by_tir = w.ok("/v1/panel?sort=time_in_range").await;
    assert_eq!(by_tir["items"][0]["display_name"], "Bo");
    assert_eq!(
        by_tir["items"][3]["display_name"], "Di",
        "rows without the value go last"
    );
    let by_lows = w.ok("/v1/panel?sort=time_below_54").await;
    assert_eq!(by_lows["items"][0]["display_name"], "Bo");
    assert_eq!(
        w.get("/v1/panel?flag=nonsense").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(w.get("/v1/panel?q=ad").await.1["total"], 1);

    // A late backfill: a day four days back at 250.1 mg/dL (very high) arrives after the
    // rollups caught up; the trend and the stored day follow.
    let old_start = start - Duration::days(1);
    let backfill: Vec<(DateTime<Utc>, f64)> = (0..288)
        .map(|k| (old_start + Duration::minutes(5 * k), 250.1))
        .collect();
    ada_cgm.send_glucose(&backfill, "cgm").await;
    w.caught_up().await;
    let after = w
        .ok(&format!("/v1/patients/{ada}/trends/glucose?days=6"))
        .await;
    assert_eq!(after["metrics"]["readings"], 864 + 288);
    let very_high = after["metrics"]["time_very_high_percent"]
        .as_f64()
        .expect("share");
    assert!(very_high > 20.0, "{very_high}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(readings), 0)::int8 FROM glucose_days WHERE patient_id = $1",
    )
    .bind(ada)
    .fetch_one(&w.db.pool)
    .await
    .expect("sum");
    assert_eq!(stored, 864 + 288, "the rollups hold the backfilled day");

    // A zone change rebuilds every day in the new zone; the figures stay the same over a
    // window that holds all the data.
    w.server
        .admin(&[
            "patient",
            "set-time-zone",
            "--patient",
            &ada.to_string(),
            "--time-zone",
            "America/Los_Angeles",
        ])
        .await
        .expect("set zone");
    w.caught_up().await;
    let zones: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT time_zone FROM glucose_days WHERE patient_id = $1")
            .bind(ada)
            .fetch_all(&w.db.pool)
            .await
            .expect("zones");
    assert_eq!(zones, ["America/Los_Angeles"]);
    let moved = w
        .ok(&format!("/v1/patients/{ada}/trends/glucose?days=7"))
        .await;
    assert_eq!(moved["time_zone"], "America/Los_Angeles");
    assert_eq!(moved["metrics"]["readings"], 864 + 288);
    close(
        &moved["metrics"]["mean"],
        after["metrics"]["mean"].as_f64().expect("mean"),
        "mean after the zone change",
    );
    assert_eq!(
        w.get(&format!(
            "/v1/patients/{ada}/trends/glucose?from=2026-01-02&to=2026-01-01"
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}
