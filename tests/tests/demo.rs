//! `chronicle demo` on its embedded defaults (a private PostgreSQL it starts itself, the
//! embedded broker): it prints the URL and log-ins, a clinician logs in and sees the demo
//! patients and their readings, and a second run finds the same clinic and only fills the gap.

use chronicle_tests::free_port;
use chronicle_tests::readers::pdf_text;
use chronicle_tests::server::{chronicle_binary, traversable_tempdir};
use chrono::NaiveDate;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Demo {
    child: Child,
    /// Everything printed until the devices went live.
    out: String,
    http: u16,
}

/// Starts `chronicle demo` and reads its output until the devices are live.
async fn start(data_dir: &Path, http: u16, mqtt: u16) -> Demo {
    let mut child = Command::new(chronicle_binary().expect("chronicle is built"))
        .env_remove("CHRONICLE_DATABASE_URL")
        .env("CHRONICLE_LOG", "warn")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["demo", "--patients", "3", "--backfill-days", "1"])
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--mqtt-listen")
        .arg(format!("127.0.0.1:{mqtt}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("chronicle demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("reads stdout") {
            out.push_str(&line);
            out.push('\n');
            if line.starts_with("Devices are live") {
                return;
            }
        }
        panic!("chronicle demo ended before its devices went live:\n{out}");
    };
    tokio::time::timeout(Duration::from_secs(180), read)
        .await
        .unwrap_or_else(|_| panic!("chronicle demo not live within 180 s"));
    // Keep draining stdout so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo { child, out, http }
}

/// The panel once the alert engine has raised the scenarios' alerts (within 60 s: the test
/// command runs this beside other work on two cores).
async fn wait_for_open_alerts(client: &reqwest::Client, demo: &Demo, token: &str) -> Value {
    let mut panel = Value::Null;
    for _ in 0..300 {
        panel = client
            .get(demo.url("/v1/panel"))
            .bearer_auth(token)
            .send()
            .await
            .expect("panel")
            .json()
            .await
            .expect("json");
        let open: u64 = panel["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|p| p["open_alerts"]["open"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if open >= 2 {
            return panel;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no open alerts in the demo's panel within 60 s: {panel}");
}

impl Demo {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            kill(
                Pid::from_raw(i32::try_from(pid).expect("pid")),
                Signal::SIGTERM,
            )
            .expect("signal");
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("stops within 60 s of SIGTERM")
            .expect("exit status");
        assert!(status.success(), "chronicle demo exited with {status}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// A clinician's e-mail and the demo password, as printed.
    fn clinician_login(&self) -> (String, String) {
        let line = self
            .out
            .lines()
            .find(|l| l.trim_start().starts_with("clinician"))
            .unwrap_or_else(|| panic!("no clinician log-in printed:\n{}", self.out));
        let words: Vec<&str> = line.split_whitespace().collect();
        let password = words
            .iter()
            .position(|w| *w == "password")
            .and_then(|i| words.get(i + 1))
            .expect("password printed");
        (words[1].to_owned(), (*password).to_owned())
    }

    async fn login(&self, client: &reqwest::Client) -> String {
        let (email, password) = self.clinician_login();
        let response = client
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request");
        assert!(response.status().is_success(), "log-in as {email} failed");
        let body: Value = response.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }
}

#[tokio::test]
async fn demo_prints_logins_serves_the_clinic_and_resumes_without_duplicates() {
    let dir = traversable_tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let (http, mqtt) = (free_port(), free_port());
    let demo = start(&data_dir, http, mqtt).await;
    assert!(
        demo.out
            .contains(&format!("Dashboard: http://127.0.0.1:{http}/")),
        "{}",
        demo.out
    );
    assert!(
        demo.out.contains("Provisioning the demo clinic"),
        "{}",
        demo.out
    );
    assert!(
        demo.out.contains("patient01@"),
        "a patient log-in: {}",
        demo.out
    );
    let backfilled = demo
        .out
        .lines()
        .find(|l| l.starts_with("Backfilled"))
        .expect("backfill reported")
        .to_owned();
    assert!(
        backfilled.contains(" 0 duplicates, 0 rejected"),
        "{backfilled}"
    );

    let client = reqwest::Client::new();
    let token = demo.login(&client).await;
    let patients: Vec<Value> = client
        .get(demo.url("/v1/patients"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("patients")
        .json()
        .await
        .expect("json");
    // The three simulated patients, and the two whose devices play a scenario.
    assert_eq!(patients.len(), 5, "{patients:?}");
    // A day of history arrived through MQTT: the clinician reads it through the grant.
    let mut readings = 0;
    for p in &patients {
        assert_eq!(p["basis"], "grant");
        let id = p["patient_id"].as_str().expect("id");
        for kind in ["glucose", "blood-pressure"] {
            let response = client
                .get(demo.url(&format!("/v1/patients/{id}/{kind}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("readings");
            if response.status().is_success() {
                let body: Value = response.json().await.expect("json");
                readings += body["items"].as_array().map_or(0, Vec::len);
            }
        }
    }
    assert!(readings > 50, "only {readings} readings visible");

    // The dashboard opens onto open alerts: the scenarios' alarming readings arrived live.
    let panel = wait_for_open_alerts(&client, &demo, &token).await;
    let names: Vec<&str> = panel["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["open_alerts"]["open_urgent"].as_u64().unwrap_or(0) > 0)
        .filter_map(|p| p["display_name"].as_str())
        .collect();
    assert!(
        names.contains(&"Walter Okoye"),
        "the hypertensive crisis is an open urgent alert: {panel}"
    );
    assert!(
        panel["items"][0]["open_alerts"]["open_urgent"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "a patient with an urgent alert comes first in the risk order: {panel}"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("demo.json")).expect("state file"),
    )
    .expect("json");
    let organization = state["demo"]["organization_id"].clone();
    // Each patient's devices are relayed by their phone app, a gateway of their own.
    let gateways = state["gateways"]
        .as_array()
        .expect("gateways in the state")
        .clone();
    let state_patients = state["patients"].as_array().expect("patients");
    assert_eq!(gateways.len(), state_patients.len());
    for (gateway, patient) in gateways.iter().zip(state_patients) {
        let devices: Vec<&Value> = patient["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| &d["device_id"])
            .collect();
        let relayed: Vec<&Value> = gateway["devices"]
            .as_array()
            .expect("relayed")
            .iter()
            .collect();
        assert_eq!(relayed, devices, "{gateway}");
    }

    // The printable AGP report of a demo patient carries the trend API's figures (past local
    // days only, so live readings cannot change them between the two reads).
    let get = |path: String| {
        let request = client.get(demo.url(&path)).bearer_auth(&token);
        async move { request.send().await.expect("request") }
    };
    let mut reported = 0;
    for p in &patients {
        let id = p["patient_id"].as_str().expect("id");
        let today = get(format!("/v1/patients/{id}/trends/glucose?days=1")).await;
        if !today.status().is_success() {
            continue;
        }
        let today: Value = today.json().await.expect("json");
        let last: NaiveDate = today["window"]["last_day"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("last day");
        let period = format!(
            "from={}&to={}",
            last - chrono::Days::new(13),
            last - chrono::Days::new(1)
        );
        let trend: Value = get(format!("/v1/patients/{id}/trends/glucose?{period}"))
            .await
            .json()
            .await
            .expect("json");
        let m = &trend["metrics"];
        if m["readings"].as_i64().unwrap_or(0) == 0 {
            continue;
        }
        let response = get(format!("/v1/patients/{id}/reports/agp.pdf?{period}")).await;
        assert!(response.status().is_success(), "{}", response.status());
        let text = pdf_text(&response.bytes().await.expect("pdf"));
        let figure = |field: &str| format!("{:.1}", m[field].as_f64().unwrap_or(f64::NAN));
        for line in [
            format!("Mean glucose: {} mg/dL", figure("mean")),
            format!(
                "Glucose management indicator (GMI): {}%",
                figure("gmi_percent")
            ),
            format!(
                "In range (70–180 mg/dL): {}%",
                figure("time_in_range_percent")
            ),
            format!("Readings: {}", m["readings"]),
        ] {
            assert!(text.contains(&line), "{line:?} not in the report: {text}");
        }
        reported += 1;
    }
    assert!(
        reported > 0,
        "no demo patient has glucose readings before today"
    );
    demo.stop().await;

    // Again on the same data directory: the same clinic, only the gap filled.
    let demo = start(&data_dir, http, mqtt).await;
    assert!(demo.out.contains("Found the demo clinic"), "{}", demo.out);
    assert!(!demo.out.contains("Provisioning"), "{}", demo.out);
    let backfilled = demo
        .out
        .lines()
        .find(|l| l.starts_with("Backfilled"))
        .expect("backfill reported");
    assert!(backfilled.contains(" 0 duplicates"), "{backfilled}");
    let token = demo.login(&client).await;
    let patients: Vec<Value> = client
        .get(demo.url("/v1/patients"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("patients")
        .json()
        .await
        .expect("json");
    assert_eq!(patients.len(), 5, "no second clinic: {patients:?}");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("demo.json")).expect("state file"),
    )
    .expect("json");
    assert_eq!(state["demo"]["organization_id"], organization);
    assert_eq!(
        state["gateways"].as_array(),
        Some(&gateways),
        "the same gateways"
    );
    demo.stop().await;
}
