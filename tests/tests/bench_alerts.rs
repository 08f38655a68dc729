//! `chronicle bench alerts` at toy size, as a user runs it: a handful of background devices,
//! a few probe alarms, each timed to the alert stream and to a Web Push (encrypted as for a
//! browser) arriving at the benchmark's own push service. Checks that the command completes,
//! that every alarm arrived both ways, that its report has every figure, and that
//! `--statements` lists where PostgreSQL's time went. It measures nothing: the figures belong
//! in docs/benchmarks.md.

use chronicle_tests::bench::run_bench;

#[tokio::test]
async fn alert_benchmark_times_every_alarm_to_the_stream_and_to_a_push() {
    let (stdout, report) = run_bench(&[
        "alerts",
        "--devices",
        "5",
        "--capacity-messages",
        "20",
        "--probes",
        "5",
        "--probe-interval-ms",
        "300",
        "--timeout-seconds",
        "60",
        "--statements",
    ])
    .await;
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
    // --statements: after the report, where PostgreSQL's time went, the ingest's batch
    // statement (which stored every reading) among it.
    let (_, statements) = stdout
        .split_once("PostgreSQL statements by total time over the run")
        .unwrap_or_else(|| panic!("no statement table after the report:\n{stdout}"));
    assert!(
        statements.contains("INSERT INTO glucose_samples"),
        "{statements}"
    );
}
