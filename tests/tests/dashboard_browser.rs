//! The web dashboard in a real browser: Debian's Chromium, driven by Playwright
//! (`dashboards/tests/browser.mjs`), against a real `chronicle serve` whose data came in through
//! the real ingest over MQTT and whose accounts and grants are in the real database.
//!
//! This test seeds the clinic, runs the browser script (which logs in as the patient, the
//! clinician and a guardian, checks what each page shows, switches units, zooms, adds and
//! revokes grants, and writes a screenshot of each page to `target/dashboard-screenshots/`),
//! then checks through the API that what the browser did really happened. A second test runs
//! `dashboards/tests/escalation.mjs`, in which a clinician sets who of their care team an
//! urgent alert reaches, and checks the chain it saved through the API.
//!
//! It needs Node.js with `npm ci` run in `dashboards/`, and Chromium; `scripts/test` installs
//! both. `CHRONICLE_CHROMIUM` names another Chromium binary.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::NewUser;
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::{ChronicleServer, ServerOptions, TestDatabase, TestDevice};
use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";
/// A CGM reading every 5 minutes, as most sensors send.
const CGM_STEP_MINUTES: i64 = 5;
/// The newest reading's age; older ones go back almost 14 days, so that the dashboard's
/// default period (the last 14 days, from the moment the browser asks) holds all of them.
const NEWEST_READING_AGE_MINUTES: i64 = 2;
const SEEDED_SPAN_MINUTES: i64 = 14 * 24 * 60 - 60;
/** A meter reading sent live after the history: below 54 mg/dL, it raises an urgent alert. */
const LIVE_LOW_MG_DL: i64 = 48;
/** A meter reading the patient's own alerts page watches arrive: above 400 mg/dL, urgent. */
const URGENT_HIGH_MG_DL: i64 = 420;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Where the screenshots go: `target/dashboard-screenshots/` of this workspace.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("dashboard-screenshots")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHRONICLE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {}: install it (apt-get install chromium; scripts/test \
         does) or set CHRONICLE_CHROMIUM",
        path.display()
    );
    path
}

/// A deterministic day of glucose in mg/dL: a daily rhythm, three meals, and sensor noise.
fn glucose_at(at: DateTime<Utc>, seed: &mut u64) -> i64 {
    use chrono::Timelike;
    let hour = f64::from(at.hour()) + f64::from(at.minute()) / 60.0;
    let rhythm = 20.0 * (std::f64::consts::TAU * (hour - 4.0) / 24.0).sin();
    let meal = |start: f64, height: f64| {
        let since = hour - start;
        if (0.0..4.0).contains(&since) {
            height * since * (-since * 1.2).exp() * 3.0
        } else {
            0.0
        }
    };
    // A small linear congruential generator: the same noise on every run.
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let noise = ((*seed >> 33) % 11) as f64 - 5.0;
    let value = 125.0 + rhythm + meal(13.0, 55.0) + meal(18.5, 70.0) + meal(0.5, 40.0) + noise;
    value.round().clamp(40.0, 400.0) as i64
}

struct Clinic {
    _db: TestDatabase,
    server: ChronicleServer,
    http: reqwest::Client,
    scenario: Value,
    maria: Uuid,
    /// Maria's own account.
    maria_user: Uuid,
    diabetes_grant: Uuid,
    cardiology_team: Uuid,
}

async fn user(store: &Store, email: &str, name: &str, role: Role, patient: Option<Uuid>) -> Uuid {
    store
        .create_user(&NewUser {
            email: email.into(),
            display_name: name.into(),
            role,
            password_hash: Some(hash_password(PASSWORD).expect("hash")),
            patient_id: patient,
        })
        .await
        .expect("user")
        .id
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

async fn grant(store: &Store, spec: NewGrant) -> Uuid {
    store.create_grant(&spec).await.expect("grant").id
}

/// Publishes readings through the real ingest, a batch message at a time, and checks each
/// message was stored whole.
async fn send_readings(server: &ChronicleServer, patient: Uuid, kind: &str, readings: &[Value]) {
    let (device_id, secret) = server
        .add_device(&patient.to_string(), kind)
        .await
        .expect("device");
    let mut device = TestDevice::connect(server.mqtt_port(), &device_id, Some(&secret))
        .await
        .expect("device connects");
    for batch in readings.chunks(1000) {
        let ack = device
            .send(json!({ "readings": batch }).to_string())
            .await
            .expect("ack");
        assert_eq!(ack.stored, batch.len(), "{ack:?}");
    }
    device.disconnect().await;
}

/// Logs in through the API; returns the session token.
async fn log_in(http: &reqwest::Client, server: &ChronicleServer, email: &str) -> String {
    let response = http
        .post(server.http_url("/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

impl Clinic {
    async fn open() -> Clinic {
        let db = TestDatabase::create().await.expect("database");
        let server = ChronicleServer::start(ServerOptions {
            database_url: Some(db.url.clone()),
            ..Default::default()
        })
        .await
        .expect("server");
        let store = Store::from_pool(db.pool.clone());
        let http = reqwest::Client::new();

        let maria = patient(&store, "Maria Garcia", "America/Chicago").await;
        let sam = patient(&store, "Sam Park", "Europe/Berlin").await;
        let noor = patient(&store, "Noor Haddad", "Asia/Dubai").await;
        let maria_user = user(
            &store,
            "maria@example.org",
            "Maria Garcia",
            Role::Patient,
            Some(maria),
        )
        .await;
        let elena = user(
            &store,
            "elena@example.org",
            "Elena Garcia",
            Role::Caregiver,
            None,
        )
        .await;
        store.add_guardian(maria, elena).await.expect("guardian");
        user(
            &store,
            "noor@example.org",
            "Noor Haddad",
            Role::Patient,
            Some(noor),
        )
        .await;

        let org = store
            .create_organization("North Clinic")
            .await
            .expect("org");
        let diabetes = store
            .create_care_team(org.id, "Diabetes team")
            .await
            .expect("team");
        let cardiology = store
            .create_care_team(org.id, "Cardiology team")
            .await
            .expect("team");
        let lee = user(
            &store,
            "lee@clinic.example",
            "Dr. Lee",
            Role::Clinician,
            None,
        )
        .await;
        store
            .add_team_member(diabetes.id, lee)
            .await
            .expect("member");
        // An emergency physician of the same clinic, in none of its care teams: the clinic's
        // care grant is the care relationship an emergency access needs.
        let okafor = user(
            &store,
            "okafor@clinic.example",
            "Dr. Okafor",
            Role::Clinician,
            None,
        )
        .await;
        store
            .add_organization_member(org.id, okafor)
            .await
            .expect("member of the clinic");

        let now = Utc::now();
        let care = |patient_id, team, categories: &[DataCategory], access: &[Access]| NewGrant {
            patient_id,
            grantee: Grantee::CareTeam(team),
            categories: categories.iter().copied().collect(),
            access: access.iter().copied().collect(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: Some(now + Duration::days(90)),
            created_by: None,
        };
        let diabetes_grant = grant(
            &store,
            care(
                maria,
                diabetes.id,
                &[
                    DataCategory::Glucose,
                    DataCategory::BloodPressure,
                    DataCategory::DeviceInfo,
                ],
                &[Access::ViewReadings, Access::Export, Access::ReceiveAlerts],
            ),
        )
        .await;
        // An older grant to the whole organization, revoked since: a past grant.
        let old = grant(
            &store,
            NewGrant {
                grantee: Grantee::Organization(org.id),
                ..care(
                    maria,
                    org.id,
                    &[DataCategory::Glucose],
                    &[Access::ViewTrends],
                )
            },
        )
        .await;
        store
            .revoke_grant(maria, old)
            .await
            .expect("revoke")
            .expect("grant");
        grant(
            &store,
            care(
                sam,
                diabetes.id,
                &[DataCategory::BloodPressure],
                &[Access::ViewReadings],
            ),
        )
        .await;
        grant(
            &store,
            care(
                sam,
                diabetes.id,
                &[DataCategory::Glucose],
                &[Access::ViewTrends],
            ),
        )
        .await;

        // Readings through the real ingest: two weeks of CGM, a meter reading a day and a
        // cuff twice a day.
        let newest = now - Duration::minutes(NEWEST_READING_AGE_MINUTES);
        let oldest = newest - Duration::minutes(SEEDED_SPAN_MINUTES);
        let mut seed = 7;
        let mut cgm = Vec::new();
        let mut at = oldest;
        while at <= newest {
            let mg_dl = glucose_at(at, &mut seed);
            cgm.push(json!({"type": "glucose", "value": mg_dl, "unit": "mg/dL",
                "source": "cgm", "measured_at": at.to_rfc3339()}));
            at += Duration::minutes(CGM_STEP_MINUTES);
        }
        let days = SEEDED_SPAN_MINUTES / (24 * 60);
        let meter: Vec<Value> = (0..=days)
            .map(|d| {
                let at = oldest + Duration::hours(3) + Duration::days(d);
                json!({"type": "glucose", "value": 6.1 + (d % 4) as f64 * 0.7, "unit": "mmol/L",
                    "source": "meter", "measured_at": at.to_rfc3339()})
            })
            .collect();
        // At 07:30 and 19:30 on the patient's own clock, the home protocol's morning and
        // evening sessions, whatever the time of day the test runs.
        let cuff = |shift: i64, zone: &str| -> Vec<Value> {
            let zone = chronicle_domain::zone::parse_time_zone(zone).expect("zone");
            let first_day = oldest.with_timezone(&zone).date_naive() + chrono::Days::new(1);
            (0..=days * 2)
                .filter_map(|half_day| {
                    let date = first_day + chrono::Days::new(u64::try_from(half_day / 2).ok()?);
                    let hour = if half_day % 2 == 0 { 7 } else { 19 };
                    let local = date.and_hms_opt(hour, 30, 0)?;
                    let at = zone.from_local_datetime(&local).single()?.with_timezone(&Utc);
                    (at <= newest).then(|| {
                        json!({"type": "blood_pressure", "systolic": 124 + shift + (half_day * 7) % 19,
                            "diastolic": 78 + (half_day * 5) % 11, "pulse": 64 + half_day % 9,
                            "measured_at": at.to_rfc3339()})
                    })
                })
                .collect()
        };
        send_readings(&server, maria, "cgm", &cgm).await;
        send_readings(&server, maria, "meter", &meter).await;
        // Her phone app's log of the last day, as a glucose device of its own. She sees it on
        // her trace; the care team's grant does not include treatments.
        let ago = |hours: i64| (newest - Duration::hours(hours)).to_rfc3339();
        let treatments = [
            json!({"type": "insulin", "delivery": "bolus", "units": 4.5, "measured_at": ago(5)}),
            json!({"type": "carbohydrates", "grams": 45, "measured_at": ago(5)}),
            json!({"type": "exercise", "duration_minutes": 40, "measured_at": ago(8)}),
            json!({"type": "insulin", "delivery": "bolus", "units": 6, "measured_at": ago(10)}),
            json!({"type": "carbohydrates", "grams": 60, "note": "lunch", "measured_at": ago(10)}),
        ];
        send_readings(&server, maria, "cgm", &treatments).await;
        let maria_bp = cuff(0, "America/Chicago");
        send_readings(&server, maria, "bp", &maria_bp).await;
        send_readings(&server, sam, "bp", &cuff(12, "Europe/Berlin")).await;
        // Sam's CGM of the last three days, which Dr. Lee sees as trends only.
        let sam_cgm: Vec<Value> = cgm[cgm.len() - 3 * 288..]
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["value"] = json!(r["value"].as_i64().expect("value") + 30);
                r
            })
            .collect();
        send_readings(&server, sam, "cgm", &sam_cgm).await;
        // A live meter reading below 54 mg/dL: the alert engine opens an urgent alert.
        send_readings(
            &server,
            maria,
            "meter",
            &[json!({"type": "glucose", "value": LIVE_LOW_MG_DL, "unit": "mg/dL", "source": "meter",
                "measured_at": Utc::now().to_rfc3339()})],
        )
        .await;

        let mut clinic = Clinic {
            _db: db,
            server,
            http,
            scenario: Value::Null,
            maria,
            maria_user,
            diabetes_grant,
            cardiology_team: cardiology.id,
        };

        // Activity for Maria's access log: Dr. Lee reads through the team's grant; Dr. Okafor,
        // who holds no grant, opens the record in an emergency and reads it.
        let lee_token = clinic.login("lee@clinic.example").await;
        assert_eq!(
            clinic.glucose_status(&lee_token, maria).await,
            StatusCode::OK
        );
        clinic
            .wait_for_alert(&lee_token, maria, "glucose_very_low")
            .await;
        let okafor = clinic.login("okafor@clinic.example").await;
        assert_eq!(
            clinic.glucose_status(&okafor, maria).await,
            StatusCode::NOT_FOUND
        );
        let opened = clinic
            .http
            .post(
                clinic
                    .server
                    .http_url(&format!("/v1/patients/{maria}/emergency-access")),
            )
            .bearer_auth(&okafor)
            .json(&json!({"reason": "Found unresponsive in the waiting room"}))
            .send()
            .await
            .expect("emergency access");
        assert_eq!(opened.status(), StatusCode::CREATED);
        assert_eq!(clinic.glucose_status(&okafor, maria).await, StatusCode::OK);
        let open_alerts = clinic.settled_open_alerts(&lee_token, maria).await;

        clinic.scenario = json!({
            "url": clinic.server.http_url(""),
            "password": PASSWORD,
            "chromium": chromium(),
            "screenshots": screenshot_dir(),
            "patient": {
                "id": maria, "name": "Maria Garcia", "email": "maria@example.org",
                "time_zone": "America/Chicago",
                "glucose_readings": cgm.len() + meter.len() + 1,
                "blood_pressure_readings": maria_bp.len(),
                "latest_mg_dl": LIVE_LOW_MG_DL,
                // What the panel must say: the live very low is the one urgent alert; how
                // many others the seeded history leaves open is the engine's to decide.
                "open_alerts_text": open_alerts,
                "treatments": "2 boluses (10.5 U), 2 carbohydrate entries (105 g) and 1 exercise session",
            },
            "guardian": {"name": "Elena Garcia", "email": "elena@example.org"},
            "clinician": {"name": "Dr. Lee", "email": "lee@clinic.example", "team": "Diabetes team"},
            "emergency": {"name": "Dr. Okafor", "reason": "Found unresponsive in the waiting room"},
            "trends_only_patient": {"id": sam, "name": "Sam Park"},
            "unshared_patient": {"id": noor, "name": "Noor Haddad"},
            "other_team": {"id": cardiology.id, "name": "Cardiology team"},
        });
        clinic
    }

    async fn login(&self, email: &str) -> String {
        log_in(&self.http, &self.server, email).await
    }

    /// The patient's open alerts as the panel counts them (`"2 open (1 urgent)"`), once the
    /// engine has settled: the same counts in two reads a scheduler tick apart. Exactly one
    /// is urgent (the live very low reading).
    async fn settled_open_alerts(&self, token: &str, patient: Uuid) -> String {
        let counts = || async {
            let panel: Value = self
                .http
                .get(self.server.http_url("/v1/panel"))
                .bearer_auth(token)
                .send()
                .await
                .expect("panel")
                .json()
                .await
                .expect("json");
            panel["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["patient_id"] == json!(patient)))
                .map(|row| row["open_alerts"].clone())
                .expect("the patient on the panel")
        };
        let mut last = counts().await;
        for _ in 0..10 {
            tokio::time::sleep(StdDuration::from_secs(6)).await;
            let now = counts().await;
            if now == last {
                break;
            }
            last = now;
        }
        assert_eq!(last["open_urgent"], 1, "one urgent alert open: {last}");
        assert_eq!(last["acknowledged"], 0, "{last}");
        format!("{} open (1 urgent)", last["open"])
    }

    /// Waits until the engine has opened an alert of `rule` for the patient; returns it.
    async fn wait_for_alert(&self, token: &str, patient: Uuid, rule: &str) -> Value {
        for _ in 0..100 {
            let page: Value = self
                .http
                .get(self.server.http_url(&format!(
                    "/v1/patients/{patient}/alerts?rule={rule}&kind=alert"
                )))
                .bearer_auth(token)
                .send()
                .await
                .expect("alerts")
                .json()
                .await
                .expect("json");
            if let Some(alert) = page["items"].as_array().and_then(|items| items.first()) {
                return alert.clone();
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        panic!("no {rule} alert for {patient} within 10 s");
    }

    /// Publishes a cuff reading through MQTT while the browser watches: 196/104 raises a
    /// hypertensive crisis, 84/52 low blood pressure.
    async fn raise_live_alert(&self, systolic: i64, diastolic: i64) {
        send_readings(
            &self.server,
            self.maria,
            "bp",
            &[
                json!({"type": "blood_pressure", "systolic": systolic, "diastolic": diastolic,
                "pulse": 88, "measured_at": Utc::now().to_rfc3339()}),
            ],
        )
        .await;
    }

    /// Breaks every open alert stream (the server stops and starts again on the same ports),
    /// then raises low blood pressure at once, before a page's next attempt to reconnect.
    /// Returns once the alert exists, so a page can only get it from the replay.
    async fn raise_missed_alert(&mut self) {
        self.server.terminate().await.expect("the server stops");
        self.server
            .restart()
            .await
            .expect("the server starts again");
        self.raise_live_alert(84, 52).await;
        let token = self.login("lee@clinic.example").await;
        self.wait_for_alert(&token, self.maria, "bp_low").await;
    }

    /// Publishes a meter reading above 400 mg/dL through MQTT while the patient's own alerts
    /// page is open: it raises an urgent very high glucose.
    async fn raise_patient_alert(&self) {
        send_readings(
            &self.server,
            self.maria,
            "meter",
            &[
                json!({"type": "glucose", "value": URGENT_HIGH_MG_DL, "unit": "mg/dL",
                "source": "meter", "measured_at": Utc::now().to_rfc3339()}),
            ],
        )
        .await;
    }

    async fn glucose_status(&self, token: &str, patient: Uuid) -> StatusCode {
        self.http
            .get(
                self.server
                    .http_url(&format!("/v1/patients/{patient}/glucose?limit=1")),
            )
            .bearer_auth(token)
            .send()
            .await
            .expect("glucose")
            .status()
    }
}

/// What a browser script may ask the test for, by printing a line `@request <what>` and
/// waiting for `<what>` on its standard input once the test has done it.
trait ScriptRequests {
    async fn answer(&mut self, what: &str);
}

impl ScriptRequests for Clinic {
    /// `live-alert` publishes an alarming reading through MQTT while the page is open;
    /// `missed-alert` restarts the server (breaking the page's alert stream) and raises an
    /// alert before the page reconnects; `patient-alert` publishes a very high glucose while
    /// the patient's own alerts page is open.
    async fn answer(&mut self, what: &str) {
        match what {
            "live-alert" => self.raise_live_alert(196, 104).await,
            "missed-alert" => self.raise_missed_alert().await,
            "patient-alert" => self.raise_patient_alert().await,
            other => panic!("the browser script asked for {other:?}"),
        }
    }
}

/// Runs `dashboards/tests/<script>` on the scenario, answering its requests, and fails with
/// its output.
async fn run_browser_script(script: &str, scenario: &Value, requests: &mut impl ScriptRequests) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let root = workspace_root();
    let dashboards = root.join("dashboards");
    assert!(
        dashboards.join("node_modules/playwright-core").exists(),
        "the browser tests need the dashboard's npm packages: run `npm ci` in dashboards/ \
         (scripts/test does; it needs Node.js 20.19 or newer)"
    );
    std::fs::create_dir_all(screenshot_dir()).expect("screenshot folder");
    let mut child = tokio::process::Command::new("node")
        .arg(Path::new("tests").join(script))
        .current_dir(&dashboards)
        .env("CHRONICLE_SCENARIO", scenario.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs: install Node.js 20.19 or newer (scripts/test does)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = String::new();
    let conversation = async {
        while let Some(line) = lines.next_line().await.expect("reads the script's output") {
            println!("{line}");
            if let Some(what) = line.strip_prefix("@request ") {
                requests.answer(what).await;
                stdin
                    .write_all(format!("{what}\n").as_bytes())
                    .await
                    .expect("answers the script");
            }
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait().await.expect("exit status")
    };
    let status = tokio::time::timeout(StdDuration::from_secs(300), conversation)
        .await
        .expect("the browser script finishes within 5 minutes");
    let stderr = errors.await.unwrap_or_default();
    assert!(
        status.success(),
        "the browser script failed ({status}):\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let mut clinic = Clinic::open().await;
    let scenario = clinic.scenario.clone();
    run_browser_script("browser.mjs", &scenario, &mut clinic).await;

    // What the browser did, seen through the API: the patient revoked the team's grant and
    // added one for the cardiology team; the clinician now gets nothing.
    let maria = clinic.login("maria@example.org").await;
    let grants: Vec<Value> = clinic
        .http
        .get(
            clinic
                .server
                .http_url(&format!("/v1/patients/{}/grants", clinic.maria)),
        )
        .bearer_auth(&maria)
        .send()
        .await
        .expect("grants")
        .json()
        .await
        .expect("json");
    let find = |id: &str| grants.iter().find(|g| g["id"] == id).cloned();
    let revoked = find(&clinic.diabetes_grant.to_string()).expect("the team's grant");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(
        revoked["grantee"]["name"], "Diabetes team",
        "grants name their grantee, so the page shows no raw ids"
    );
    assert!(
        grants
            .iter()
            .any(|g| g["grantee"]["id"] == clinic.cardiology_team.to_string()
                && g["active"] == true
                && g["access"] == json!(["view_trends"])),
        "the grant added in the browser: {grants:?}"
    );
    let lee = clinic.login("lee@clinic.example").await;
    assert_eq!(
        clinic.glucose_status(&lee, clinic.maria).await,
        StatusCode::NOT_FOUND
    );

    // The access log names who read, for the sentences the page writes.
    let log: Value = clinic
        .http
        .get(clinic.server.http_url(&format!(
            "/v1/patients/{}/access-log?limit=5000",
            clinic.maria
        )))
        .bearer_auth(&maria)
        .send()
        .await
        .expect("access log")
        .json()
        .await
        .expect("json");
    let items = log["items"].as_array().expect("items");
    assert!(
        items.iter().any(|e| e["actor_name"] == "Dr. Okafor"
            && e["action"] == "open_emergency_access"
            && e["reason"] == "Found unresponsive in the waiting room"),
        "{log}"
    );
    assert!(
        items
            .iter()
            .any(|e| e["actor_name"] == "Dr. Lee" && e["action"] == "list_patients"),
        "the clinician's list in the browser is in the log: {log}"
    );

    for action in [
        "read_panel",
        "read_glucose_trend",
        "read_alerts",
        "acknowledge_alert",
    ] {
        assert!(
            items
                .iter()
                .any(|e| e["actor_name"] == "Dr. Lee" && e["action"] == action),
            "the clinician's {action} in the browser is in the log: {log}"
        );
    }
    // The acknowledgement the browser made, with its note.
    let alert = clinic
        .wait_for_alert(&maria, clinic.maria, "glucose_very_low")
        .await;
    assert_eq!(alert["status"], "acknowledged", "{alert}");
    assert_eq!(
        alert["acknowledgement_note"],
        "Called her: she had juice and feels fine."
    );

    // The patient acknowledged the very high glucose for her side (the family) on her page;
    // the alert's own state, the care team's, is still open.
    let alert = clinic
        .wait_for_alert(&maria, clinic.maria, "glucose_very_high")
        .await;
    assert_eq!(alert["status"], "open", "{alert}");
    assert!(alert["acknowledged_by"].is_null(), "{alert}");
    let own = &alert["audience_acknowledgement"];
    assert_eq!(own["audience"], "patient", "{alert}");
    assert_eq!(own["note"], "Took my insulin.", "{alert}");
    assert_eq!(
        own["acknowledged_by"],
        clinic.maria_user.to_string(),
        "{alert}"
    );

    // The screenshots the documentation shows were written.
    for name in [
        "01-login.png",
        "02-patient-readings.png",
        "06-clinician-patients.png",
        "11-clinician-after-revoke.png",
        "13-clinician-trends.png",
        "16-clinician-alerts.png",
        "17-clinician-live-alert.png",
        "26-patient-alerts.png",
    ] {
        let path = screenshot_dir().join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or empty", path.display());
    }
}

/// The server answers the application's own paths with the application, and everything else
/// as before: API errors stay JSON, missing files are 404s, and the page loads nothing from
/// anywhere but this server.
#[tokio::test]
async fn the_server_serves_the_single_page_application() {
    let db = TestDatabase::create().await.expect("database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("server");
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.http_url(path)).send();

    let index = get("/").await.expect("index");
    assert_eq!(index.status(), StatusCode::OK);
    let csp = index
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = index.text().await.expect("html");
    assert!(html.contains("<div id=\"app\">"), "{html}");
    // Every script and style comes from this server: no CDN.
    let references: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("http") || s.starts_with("//"))
        .collect();
    assert!(references.is_empty(), "external references: {references:?}");

    // The application's own paths get the same page, to route in the browser.
    for path in [
        "/login",
        "/patients/3f1c9a64-0d7e-4d55-9d2e-6f2f0b1d2c3a/sharing",
    ] {
        let response = get(path).await.expect("app path");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.text().await.expect("html"), html, "{path}");
    }

    // Its script is served with a JavaScript type and cached for good (its name is a hash).
    let script = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("a script under /assets/")
        .to_owned();
    let response = get(&script).await.expect("script");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );

    // API paths and missing files stay JSON 404s, never the page.
    for path in [
        "/v1/no-such-endpoint",
        "/v1",
        "/assets/missing.js",
        "/favicon-missing.png",
    ] {
        let response = get(path).await.expect("missing");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["code"], "not_found", "{path}");
    }
    let posted = http
        .post(server.http_url("/patients"))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    // The API itself is unchanged.
    assert_eq!(
        get("/v1/me").await.expect("me").status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A care team of two clinicians, for the escalation card of the home page.
struct EscalationTeam {
    server: ChronicleServer,
    http: reqwest::Client,
    team: Uuid,
    lee: Uuid,
    ndiaye: Uuid,
}

impl EscalationTeam {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.server.http_url(path))
            .bearer_auth(log_in(&self.http, &self.server, "lee@clinic.example").await)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("json")
    }

    async fn escalation(&self) -> Value {
        self.get(&format!("/v1/care-teams/{}/escalation", self.team))
            .await
    }
}

impl ScriptRequests for EscalationTeam {
    /// `saved-escalation`: the page has saved its chain; the API must hold exactly it.
    async fn answer(&mut self, what: &str) {
        assert_eq!(
            what, "saved-escalation",
            "the browser script asked for {what:?}"
        );
        assert_eq!(
            self.escalation().await,
            json!({"policy": {
                "steps": [
                    {"after_seconds": 0, "members": [self.lee], "duties": []},
                    {"after_seconds": 600, "members": [], "duties": ["physician"]},
                ],
                "renotify_every_seconds": 300,
            }}),
            "the chain saved in the browser"
        );
        let members = self
            .get(&format!("/v1/care-teams/{}/members", self.team))
            .await;
        let duty_of = |user: Uuid| {
            members
                .as_array()
                .and_then(|all| all.iter().find(|m| m["user_id"] == user.to_string()))
                .map(|m| m["duty"].clone())
        };
        assert_eq!(duty_of(self.ndiaye), Some(json!("physician")), "{members}");
        assert_eq!(duty_of(self.lee), Some(Value::Null), "{members}");
    }
}

/// A clinician gives a colleague a duty and builds, saves and removes their team's chain of
/// who is told of urgent alerts, on the home page; the API holds what the page saved.
#[tokio::test]
async fn a_clinician_sets_the_team_escalation_in_the_browser() {
    let db = TestDatabase::create().await.expect("database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let org = store
        .create_organization("North Clinic")
        .await
        .expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes team")
        .await
        .expect("team");
    let lee = user(
        &store,
        "lee@clinic.example",
        "Dr. Lee",
        Role::Clinician,
        None,
    )
    .await;
    let ndiaye = user(
        &store,
        "ndiaye@clinic.example",
        "Dr. Ndiaye",
        Role::Clinician,
        None,
    )
    .await;
    for member in [lee, ndiaye] {
        store
            .add_team_member(team.id, member)
            .await
            .expect("member");
    }
    let mut escalation = EscalationTeam {
        server,
        http: reqwest::Client::new(),
        team: team.id,
        lee,
        ndiaye,
    };
    assert_eq!(escalation.escalation().await, json!({"policy": null}));

    let scenario = json!({
        "url": escalation.server.http_url(""),
        "password": PASSWORD,
        "chromium": chromium(),
        "screenshots": screenshot_dir(),
        "clinician": {"name": "Dr. Lee", "email": "lee@clinic.example"},
        "colleague": {"name": "Dr. Ndiaye"},
        "team": "Diabetes team",
    });
    run_browser_script("escalation.mjs", &scenario, &mut escalation).await;

    // The page removed the chain at the end: everyone is told at once again.
    assert_eq!(escalation.escalation().await, json!({"policy": null}));
    let path = screenshot_dir().join("25-clinician-escalation.png");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 5_000, "{} is missing or empty", path.display());
}
