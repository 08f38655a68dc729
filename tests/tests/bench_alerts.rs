//! `chronicle bench alerts` at toy size, as a user runs it: a handful of background devices,
//! a few probe alarms, each timed to the alert stream and to a Web Push (encrypted as for a
//! browser) arriving at the benchmark's own push service. Checks that the command completes,
//! that every alarm arrived both ways, and that its report has every figure. It measures
//! nothing: the figures belong in docs/benchmarks.md.

use chronicle_tests::server::{chronicle_binary, traversable_tempdir};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

#[tokio::test]
async fn alert_benchmark_times_every_alarm_to_the_stream_and_to_a_push() {
    let dir = traversable_tempdir().expect("temporary directory");
    let json = dir.path().join("alerts.json");
    let mut command = Command::new(chronicle_binary().expect("chronicle is built"));
    command
        .env("CHRONICLE_LOG", "warn")
        .args([
            "bench",
            "alerts",
            "--devices",
            "5",
            "--capacity-messages",
            "20",
        ])
        .args(["--probes", "5", "--probe-interval-ms", "300"])
        .args(["--timeout-seconds", "60"])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(bin_dir) = std::env::var_os("CHRONICLE_TEST_POSTGRES_BIN_DIR") {
        command.arg("--postgres-bin-dir").arg(bin_dir);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("bench alerts finishes within 3 minutes")
        .expect("bench alerts runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bench alerts failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report is written"))
            .expect("the report is JSON");
    let measured = &report["measured"];
    assert_eq!(measured["probes"], 5, "{report:#}");
    assert_eq!(measured["missed"], 0, "{report:#}");
    let push = &measured["push"];
    assert_eq!(
        push["count"], 5,
        "every alarm was pushed and timed: {report:#}"
    );
    assert_eq!(push["missed"], 0, "{report:#}");
    for figure in ["p50_ms", "p99_ms", "max_ms"] {
        let value = push[figure].as_f64().expect(figure);
        assert!(value > 0.0, "push {figure} = {value}: {report:#}");
        let stream = measured[figure].as_f64().expect(figure);
        assert!(stream > 0.0, "stream {figure} = {stream}: {report:#}");
    }
    assert!(
        measured["capacity_readings_per_second"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "{report:#}"
    );
    assert!(report["push_goal_met"].is_boolean(), "{report:#}");
    assert!(stdout.contains("publish → push delivered"), "{stdout}");
}
