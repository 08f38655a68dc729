//! The simulator's scenarios against the real server and its alert engine: every scenario
//! raises exactly the alerts its ground truth expects (rule, severity, live or historical,
//! triggered inside the expected window) and nothing else about the scenario's window.
//!
//! `chronicle-sim scenario --scenario all` backfills each scenario (its devices sync their
//! memory in batches), so every expected alert is `"live": false`: a historical event, never a
//! live alarm. The ground truth comes from the simulator's own oracle, not from this engine.

use chronicle_storage::Store;
use chronicle_tests::server::{sim_binary, traversable_tempdir};
use chronicle_tests::{TestApp, TestDatabase, eventually};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

#[derive(Debug, sqlx::FromRow)]
struct Recorded {
    rule: String,
    severity: String,
    kind: String,
    triggered_at: DateTime<Utc>,
}

#[tokio::test]
async fn every_simulator_scenario_raises_exactly_its_expected_alerts() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server starts");
    let dir = traversable_tempdir().expect("temp dir");
    let truth_path = dir.path().join("truth.json");
    let out = tokio::process::Command::new(sim_binary().expect("chronicle-sim is built"))
        .args(["scenario", "--scenario", "all", "--ground-truth"])
        .arg(&truth_path)
        .arg("--mqtt-port")
        .arg(server.mqtt_port().to_string())
        .arg("--database-url")
        .arg(&db.url)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("CHRONICLE_DATABASE_URL")
        .output()
        .await
        .expect("chronicle-sim runs");
    assert!(
        out.status.success(),
        "chronicle-sim scenario failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("ground truth"))
            .expect("JSON");
    let store = Store::from_pool(db.pool.clone());
    eventually(
        std::time::Duration::from_secs(60),
        "the alert engine to evaluate everything stored",
        || async { (store.pending_followups("alerts").await.ok()? == 0).then_some(()) },
    )
    .await;

    let scenarios = truth["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 6, "{truth}");
    for sc in scenarios {
        let name = sc["scenario"].as_str().expect("name");
        let patient: Uuid = sc["patient_id"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("patient id");
        let window_end = time(&sc["facts"]["window_end"]);
        let expected = sc["expected_alerts"].as_array().expect("expected alerts");
        assert!(!expected.is_empty(), "{name}: nothing expected");
        // Alerts about the scenario's window (after it every device is silent, so a live
        // `no_data` raised now is about the present, not the scenario).
        let recorded: Vec<Recorded> = sqlx::query_as(
            "SELECT rule, severity, kind, triggered_at FROM alerts
             WHERE patient_id = $1 AND triggered_at <= $2 ORDER BY triggered_at",
        )
        .bind(patient)
        .bind(window_end)
        .fetch_all(&db.pool)
        .await
        .expect("alerts");

        let kind_of = |live: bool| if live { "alert" } else { "historical" };
        // Exactly the expected rules, severities and kinds…
        let want: BTreeSet<(String, String, String)> = expected
            .iter()
            .map(|a| {
                (
                    a["rule"].as_str().expect("rule").to_owned(),
                    a["severity"].as_str().expect("severity").to_owned(),
                    kind_of(a["live"].as_bool().expect("live")).to_owned(),
                )
            })
            .collect();
        let got: BTreeSet<(String, String, String)> = recorded
            .iter()
            .map(|r| (r.rule.clone(), r.severity.clone(), r.kind.clone()))
            .collect();
        println!("{name}: {got:?}");
        assert_eq!(
            got, want,
            "{name}: recorded {recorded:#?}\nexpected {expected:#?}"
        );
        // …each triggered inside one of the expected windows of its rule…
        for r in &recorded {
            let inside = expected.iter().any(|a| {
                a["rule"] == r.rule.as_str()
                    && time(&a["not_before"]) <= r.triggered_at
                    && r.triggered_at <= time(&a["not_after"])
            });
            assert!(
                inside,
                "{name}: {r:?} outside every expected window {expected:#?}"
            );
        }
        // …and every expected alert raised in its window.
        for a in expected {
            let found = recorded.iter().any(|r| {
                a["rule"] == r.rule.as_str()
                    && time(&a["not_before"]) <= r.triggered_at
                    && r.triggered_at <= time(&a["not_after"])
            });
            assert!(
                found,
                "{name}: expected {a} not raised; recorded {recorded:#?}"
            );
        }
    }
}
