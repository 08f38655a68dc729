//! Running a `chronicle bench` command at toy size as a user runs it, for the tests that check
//! a benchmark completes and reports every figure (they measure nothing).

use crate::server::{chronicle_binary, traversable_tempdir};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Runs `chronicle bench <args>` with `--json` (and `--postgres-bin-dir` from
/// `CHRONICLE_TEST_POSTGRES_BIN_DIR`, when set), failing the test if it does not succeed
/// within 3 minutes: its stdout and its JSON report.
pub async fn run_bench(args: &[&str]) -> (String, Value) {
    let dir = traversable_tempdir().expect("temporary directory");
    let json = dir.path().join("report.json");
    let mut command = Command::new(chronicle_binary().expect("chronicle is built"));
    command
        .env("CHRONICLE_LOG", "warn")
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(bin_dir) = std::env::var_os("CHRONICLE_TEST_POSTGRES_BIN_DIR") {
        command.arg("--postgres-bin-dir").arg(bin_dir);
    }
    let what = format!("bench {}", args.first().copied().unwrap_or_default());
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within 3 minutes"))
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report is written"))
            .expect("the report is JSON");
    (stdout, report)
}
