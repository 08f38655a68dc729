//! `chronicle-sim` against a real server (the `chronicle` binary, its embedded broker and a
//! real PostgreSQL): every scenario's ground truth checked against what is stored, fault
//! injection with every fault reconciled, the time modes, gateway connections, and the help.

use chronicle_tests::server::{sim_binary, traversable_tempdir};
use chronicle_tests::{ChronicleServer, ServerOptions, TestDatabase};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::path::Path;

struct Setup {
    db: TestDatabase,
    server: ChronicleServer,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let db = TestDatabase::create().await.expect("database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("server starts");
    Setup {
        db,
        server,
        dir: traversable_tempdir().expect("temp dir"),
    }
}

/// Runs `chronicle-sim` against the server; returns (exit code, stdout, stderr).
async fn sim(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(sim_binary().expect("chronicle-sim is built"))
        .args(args)
        .arg("--mqtt-port")
        .arg(s.server.mqtt_port().to_string())
        .arg("--database-url")
        .arg(&s.db.url)
        .arg("--data-dir")
        .arg(s.server.data_dir())
        .env_remove("CHRONICLE_DATABASE_URL")
        .output()
        .await
        .expect("chronicle-sim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file written")).expect("JSON")
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

async fn glucose_of(db: &TestDatabase, device: &str) -> Vec<(DateTime<Utc>, f64, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT measured_at, value_mg_dl, received_at FROM glucose_readings WHERE device_id = $1 ORDER BY measured_at",
    )
    .bind(device)
    .fetch_all(&db.pool)
    .await
    .expect("query")
}

#[tokio::test]
async fn every_scenario_is_stored_as_its_ground_truth_says() {
    let s = setup().await;
    let truth_path = s.dir.path().join("truth.json");
    let (code, stdout, stderr) = sim(
        &s,
        &[
            "scenario",
            "--scenario",
            "all",
            "--ground-truth",
            truth_path.to_str().expect("path"),
        ],
    )
    .await;
    assert_eq!(
        code, 0,
        "chronicle-sim scenario failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Differences: none"), "{stdout}");
    let truth = read_json(&truth_path);
    assert!(truth["seed"].is_u64() && truth["generated_at"].is_string());
    let scenarios = truth["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["scenario"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "nocturnal_hypoglycemia",
            "fall_after_exercise",
            "prolonged_hyperglycemia",
            "hypertensive_crisis",
            "silent_device",
            "late_backlog"
        ]
    );
    for sc in scenarios {
        let name = sc["scenario"].as_str().expect("name");
        let device = sc["device_id"].as_str().expect("device id");
        let facts = &sc["facts"];
        let rules: Vec<&str> = sc["expected_alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["rule"].as_str().expect("rule"))
            .collect();
        // Backfilled: everything is late, so no live alarm is due.
        assert_eq!(sc["live"], false, "{name}");
        for a in sc["expected_alerts"].as_array().expect("alerts") {
            assert_eq!(a["live"], false, "{name}");
            assert!(
                time(&a["not_before"]) <= time(&a["not_after"]),
                "{name}: {a}"
            );
        }
        // The patient is the one registered for the device.
        let patient: uuid::Uuid =
            sqlx::query_scalar("SELECT patient_id FROM devices WHERE id = $1")
                .bind(device)
                .fetch_one(&s.db.pool)
                .await
                .expect("device registered");
        assert_eq!(
            patient.to_string(),
            sc["patient_id"].as_str().expect("patient")
        );
        // Every reading (and logged treatment) the ground truth says was emitted is stored.
        let emitted = facts["readings_emitted"].as_i64().expect("count");
        let stored: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM glucose_readings WHERE device_id = $1)
                  + (SELECT count(*) FROM blood_pressure_readings WHERE device_id = $1)
                  + (SELECT count(*) FROM treatment_records WHERE device_id = $1)",
        )
        .bind(device)
        .fetch_one(&s.db.pool)
        .await
        .expect("count");
        assert_eq!(stored, emitted, "{name}: stored readings");
        let from = time(&sc["started_at"]);
        let to = time(&sc["ended_at"]);
        let g = glucose_of(&s.db, device).await;
        match name {
            "nocturnal_hypoglycemia" => {
                assert_eq!(
                    rules,
                    ["glucose_predicted_low", "glucose_low", "glucose_very_low"]
                );
                // The overdose that caused it is in the record, logged through the CGM's app.
                let dose = facts["actions"][0]["units"].as_f64().expect("the dose");
                let logged: Vec<f64> = sqlx::query_scalar(
                    "SELECT amount FROM treatment_records
                     WHERE device_id = $1 AND kind = 'bolus_insulin' AND measured_at = $2",
                )
                .bind(device)
                .bind(time(&facts["actions"][0]["at"]) + chrono::Duration::seconds(15))
                .fetch_all(&s.db.pool)
                .await
                .expect("boluses");
                assert_eq!(logged.len(), 1, "{:?}", facts["actions"]);
                assert!((logged[0] - dose).abs() < 0.06, "{logged:?} vs {dose}");
                let below: Vec<_> = g.iter().filter(|r| r.1 < 54.0).collect();
                assert!(!below.is_empty(), "no reading below 54");
                assert!(
                    below.iter().all(|r| r.0 >= from && r.0 <= to),
                    "below 54 outside the event"
                );
                let nadir = g.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
                assert!((nadir - facts["nadir_mg_dl"].as_f64().expect("nadir")).abs() < 0.01);
                // Steady outside the event: nothing near the low thresholds.
                assert!(
                    g.iter()
                        .filter(|r| r.0 < from || r.0 > to)
                        .all(|r| r.1 >= 70.0)
                );
            }
            "fall_after_exercise" => {
                assert!(rules.contains(&"glucose_rapid_fall"), "{rules:?}");
                let fastest = g
                    .windows(2)
                    .filter(|w| w[0].0 >= from && w[1].0 <= to)
                    .map(|w| (w[0].1 - w[1].1) / ((w[1].0 - w[0].0).num_seconds() as f64 / 60.0))
                    .fold(0.0, f64::max);
                assert!(fastest > 3.0, "fastest fall {fastest} mg/dL/min");
            }
            "prolonged_hyperglycemia" => {
                assert_eq!(rules, ["glucose_very_high"]);
                let above: Vec<_> = g.iter().filter(|r| r.1 > 250.0).collect();
                let span = above.last().expect("high readings").0 - above[0].0;
                assert!(span >= Duration::minutes(60), "above 250 for {span}");
                assert!(g.iter().all(|r| r.1 < 400.0));
            }
            "hypertensive_crisis" => {
                assert_eq!(rules, ["bp_crisis"]);
                let crisis: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM blood_pressure_readings WHERE device_id = $1
                       AND (systolic > 180 OR diastolic > 120) AND measured_at BETWEEN $2 AND $3",
                )
                .bind(device)
                .bind(from)
                .bind(to)
                .fetch_one(&s.db.pool)
                .await
                .expect("count");
                assert_eq!(crisis, facts["crisis_readings"].as_i64().expect("count"));
                assert!(crisis >= 1);
                // A week of normal readings before it keeps the 7-day mean below stage 2.
                let mean: f64 = sqlx::query_scalar(
                    "SELECT avg(systolic)::float8 FROM blood_pressure_readings WHERE device_id = $1",
                )
                .bind(device)
                .fetch_one(&s.db.pool)
                .await
                .expect("mean");
                assert!(mean < 135.0, "mean systolic {mean}");
            }
            "silent_device" => {
                assert_eq!(rules, ["no_data"]);
                let inside = g.iter().filter(|r| r.0 > from && r.0 < to).count();
                assert_eq!(inside, 0, "readings during the silence");
                assert!(to - from >= Duration::minutes(60));
                assert!(g.iter().any(|r| r.0 == from) && g.iter().any(|r| r.0 == to));
            }
            "late_backlog" => {
                assert_eq!(rules, ["glucose_low", "glucose_very_low"]);
                assert_eq!(sc["device_kind"], "meter");
                assert!(g.iter().any(|r| r.1 < 54.0), "the meter's hypo reading");
                // Synced late: every reading arrived hours after it was measured.
                assert!(g.iter().all(|r| r.2 - r.0 > Duration::hours(2)));
            }
            other => panic!("unexpected scenario {other}"),
        }
    }
}

#[tokio::test]
async fn fault_injection_with_every_fault_reconciles() {
    let s = setup().await;
    let report = s.dir.path().join("report.json");
    let (code, stdout, stderr) = sim(
        &s,
        &[
            "run",
            "--patients",
            "4",
            "--mode",
            "backfill",
            "--days",
            "1",
            "--batch-readings",
            "6",
            "--fault",
            "all=0.08",
            "--report-json",
            report.to_str().expect("path"),
        ],
    )
    .await;
    assert_eq!(code, 0, "reconciliation failed:\n{stdout}\n{stderr}");
    let r = &read_json(&report)["reconciliation"];
    assert_eq!(
        r["differences"].as_array().expect("differences").len(),
        0,
        "{stdout}"
    );
    let rejected: i64 = r["rejected"]
        .as_object()
        .expect("by reason")
        .values()
        .map(|v| v.as_i64().expect("count"))
        .sum();
    let sent = r["sent"].as_i64().expect("sent");
    let stored = r["stored"].as_i64().expect("stored");
    let duplicates = r["duplicates"].as_i64().expect("duplicates");
    assert_eq!(sent, stored + duplicates + rejected);
    // Every fault was injected and every one got its expected answer.
    for (fault, tally) in r["faults"].as_object().expect("faults") {
        let injected = tally["injected"].as_i64().expect("injected");
        assert!(injected > 0, "fault {fault} never injected:\n{stdout}");
        assert_eq!(tally["as_expected"], tally["injected"], "fault {fault}");
    }
    for reason in [
        "malformed_json",
        "out_of_range",
        "unknown_unit",
        "missing_field",
        "future_timestamp",
        "message_too_large",
    ] {
        assert!(
            r["rejected"][reason].as_i64().unwrap_or(0) > 0,
            "no {reason}"
        );
    }
    // Every duplicate is explained: injected, or a message resent after a connection takeover
    // whose first copy was stored; none is a reading the server held before (fresh devices).
    let explained = r["duplicates_injected"].as_i64().expect("injected")
        + r["duplicates_resent"].as_i64().expect("resent");
    assert_eq!(explained, duplicates);
    assert_eq!(r["duplicates_held"], 0);
    assert!(r["reconnections"].as_u64().expect("reconnections") > 0);
    // What the simulator counted is what the database holds: readings stored now, plus those
    // whose first copy was stored before a takeover lost its ack (resent, then duplicates).
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM glucose_readings) + (SELECT count(*) FROM blood_pressure_readings)
              + (SELECT count(*) FROM treatment_records)",
    )
    .fetch_one(&s.db.pool)
    .await
    .expect("count");
    assert_eq!(
        rows,
        stored + r["duplicates_resent"].as_i64().expect("resent")
    );
    let refused: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(readings_covered), 0)::bigint FROM rejected_readings",
    )
    .fetch_one(&s.db.pool)
    .await
    .expect("count");
    // Every refusal is recorded; a refused message resent after a takeover (its first answer
    // lost) is recorded again.
    let resent = r["resent_messages"].as_i64().expect("resent");
    assert!(
        refused >= rejected && refused <= rejected + resent,
        "{refused} refusals recorded for {rejected} counted ({resent} resent)"
    );
}

#[tokio::test]
async fn accelerated_mode_catches_up_with_the_clock_and_gateways_relay() {
    let s = setup().await;
    let started = Utc::now();
    let (code, stdout, stderr) = sim(
        &s,
        &[
            "run",
            "--patients",
            "3",
            "--mix",
            "type1-cgm",
            "--mode",
            "accelerated",
            "--speed",
            "1800",
            "--days",
            "0.0417",
            "--duration",
            "1h",
            "--connections",
            "2",
            "--progress-seconds",
            "0",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let g: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT measured_at, received_at FROM glucose_readings ORDER BY received_at",
    )
    .fetch_all(&s.db.pool)
    .await
    .expect("query");
    // Three CGMs over the last hour: about a dozen readings each, all in the past.
    assert!(g.len() >= 27, "{} readings", g.len());
    assert!(
        g.iter()
            .all(|(m, _)| *m <= Utc::now() && *m >= started - Duration::minutes(62))
    );
    // Sent as the simulated clock passed them, not all at once: the spread of arrival
    // times covers most of the 2 seconds an hour takes at 1800×.
    let spread = g.last().expect("readings").1 - g[0].1;
    assert!(
        spread >= Duration::milliseconds(1000),
        "arrivals spread over {spread}"
    );

    // Load mode over fewer connections than devices (a gateway relays for several).
    let summary = s.dir.path().join("load.json");
    let (code, stdout, stderr) = sim(
        &s,
        &[
            "load",
            "--patients",
            "12",
            "--connections",
            "3",
            "--days",
            "0.1",
            "--rate",
            "400",
            "--summary-json",
            summary.to_str().expect("path"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("msgs (") && stderr.contains("latency p50"),
        "progress lines: {stderr}"
    );
    let summary = read_json(&summary);
    assert_eq!(summary["devices"], 12);
    assert_eq!(summary["connections"], 3);
    assert_eq!(summary["differences"], 0);
    assert_eq!(summary["stored"], summary["readings"]);
    assert!(summary["messages_per_second"].as_f64().expect("rate") > 0.0);
    assert!(summary["latency_ms"]["p50_ms"].as_f64().expect("latency") > 0.0);
    // The load mode registered three gateways, each relaying a third of its devices (the run
    // above registered two of its own).
    let relayed: Vec<(i64,)> = sqlx::query_as(
        "SELECT count(*) FROM gateway_devices gd JOIN gateways g ON g.id = gd.gateway_id
         WHERE g.label LIKE 'chronicle-sim gateway % of 3' GROUP BY g.id ORDER BY 1",
    )
    .fetch_all(&s.db.pool)
    .await
    .expect("gateways");
    let relayed: Vec<i64> = relayed.into_iter().map(|(n,)| n).collect();
    assert_eq!(relayed.iter().sum::<i64>(), 12, "{relayed:?}");
    assert_eq!(relayed.len(), 3, "{relayed:?}");
}

#[tokio::test]
async fn help_documents_every_mode() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(sim_binary().expect("chronicle-sim is built"))
            .args(args)
            .output()
            .expect("runs");
        assert!(out.status.success(), "chronicle-sim {args:?} failed");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let top = help(&["--help"]);
    for word in [
        "run",
        "scenario",
        "load",
        "provision",
        "live",
        "accelerated",
        "backfill",
        "--devices-file",
        "--connections",
        "gateway",
        "reconciliation",
        "\"device_id\", \"kind\", \"secret\"",
    ] {
        assert!(
            top.contains(word),
            "`chronicle-sim --help` does not mention {word}"
        );
    }
    let run = help(&["run", "--help"]);
    for word in [
        "--mode",
        "--speed",
        "--days",
        "--duration",
        "--fault",
        "malformed_json",
        "out_of_range",
        "wrong_unit",
        "missing_field",
        "future_timestamp",
        "duplicate",
        "out_of_order",
        "offline_backlog",
        "oversized",
        "reconnect",
        "--chronicle-bin",
        "--data-dir",
        "--database-url",
        "--write-devices-file",
    ] {
        assert!(
            run.contains(word),
            "`chronicle-sim run --help` does not mention {word}"
        );
    }
    let scenario = help(&["scenario", "--help"]);
    for word in [
        "--scenario",
        "--ground-truth",
        "--late-after-minutes",
        "NAME[@TIME]",
    ] {
        assert!(
            scenario.contains(word),
            "`scenario --help` does not mention {word}"
        );
    }
    let load = help(&["load", "--help"]);
    for word in [
        "--rate",
        "--connections",
        "--summary-json",
        "--readings-per-message",
    ] {
        assert!(load.contains(word), "`load --help` does not mention {word}");
    }
}
