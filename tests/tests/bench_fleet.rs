//! `chronicle bench fleet` at toy size, as a user runs it: a few hundred patients relayed by
//! three gateways through Mosquitto, seconds of steady state and a short outage. Checks that
//! the command completes, that its JSON report has every figure, and that no reading was lost
//! across the server's restart; and the same scaled out, two ingest processes on one shared
//! subscription beside one doing the follow-up work. It measures nothing: the figures belong
//! in docs/benchmarks.md.

use chronicle_tests::bench::run_bench;
use serde_json::Value;

/// Runs `chronicle bench fleet` at toy size with `args` (after the shared ones), as a user
/// does: its stdout and its JSON report.
async fn run_fleet(args: &[&str]) -> (String, Value) {
    let mut all = vec![
        "fleet",
        "--patients",
        "600",
        "--probes",
        "2",
        "--probe-interval-ms",
        "200",
        "--broker",
        "mosquitto",
        "--timeout-seconds",
        "60",
        // Seconds, not the default CGM period: the path is exercised, the test stays short.
        "--warm-up-minutes",
        "0.05",
    ];
    all.extend_from_slice(args);
    run_bench(&all).await
}

#[tokio::test]
async fn fleet_benchmark_reports_every_figure_and_loses_nothing() {
    // 600 CGMs every 5 minutes are 2 readings/s: a steady state of 12 s and an outage of 6 s
    // leave a backlog of about a dozen readings to drain.
    let (stdout, report) = run_fleet(&[
        "--connections",
        "3",
        "--steady-minutes",
        "0.2",
        "--catch-up-minutes",
        "0.1",
    ])
    .await;
    assert_eq!(report["population"]["patients"], 600, "{report:#}");
    assert_eq!(report["population"]["cgms"], 600);
    for kind in ["meters", "cuffs"] {
        let count = report["population"][kind].as_u64().expect(kind);
        assert!(count > 0 && count < 600, "{kind}: {count}");
    }
    let steady = &report["steady"];
    for figure in [
        "sent_readings_per_second",
        "stored_readings_per_second",
        "expected_readings_per_second",
        "database_bytes_per_reading",
    ] {
        let value = steady[figure].as_f64().expect(figure);
        assert!(value > 0.0, "{figure} = {value}: {report:#}");
    }
    assert!(steady["alarms"]["alarms"].as_u64().expect("alarms") > 0);
    assert!(
        steady["evaluation_lag"]["samples"]
            .as_u64()
            .expect("samples")
            > 0
    );
    assert!(steady["server_peak_rss_bytes"].as_u64().expect("rss") > 0);
    let catch_up = &report["catch_up"];
    assert!(
        catch_up["backlog_readings"].as_u64().expect("backlog") > 0,
        "{report:#}"
    );
    assert!(
        catch_up["drain_seconds"].as_f64().is_some(),
        "the backlog drains: {report:#}"
    );
    assert!(
        catch_up["evaluation_current_seconds"].as_f64().is_some(),
        "the alert engine catches up: {report:#}"
    );
    assert_eq!(catch_up["alarms"]["missed"], 0, "{report:#}");
    let totals = &report["totals"];
    assert!(totals["sent"].as_u64().expect("sent") > 0);
    assert_eq!(totals["lost"], 0, "{report:#}");
    assert_eq!(totals["sent"], totals["stored"], "{report:#}");
    assert_eq!(report["goals"].as_array().map(Vec::len), Some(4));
    assert!(stdout.contains("whole run:"), "{stdout}");
}

#[tokio::test]
async fn scaled_out_the_ingest_processes_share_the_load_and_the_alarms_still_arrive() {
    let (stdout, report) = run_fleet(&[
        "--connections",
        "4",
        "--steady-minutes",
        "0.2",
        "--catch-up-minutes",
        "0",
        "--ingest-processes",
        "2",
    ])
    .await;
    assert_eq!(report["settings"]["ingest_processes"], 2, "{report:#}");
    // The broker splits the gateways' messages between both ingest processes.
    let split: Vec<f64> = report["steady"]["messages_by_ingest_process"]
        .as_array()
        .expect("split")
        .iter()
        .map(|m| m.as_f64().expect("count"))
        .collect();
    assert_eq!(split.len(), 2, "{report:#}");
    assert!(split.iter().all(|m| *m > 0.0), "both ingest: {split:?}");
    // The third process, which ingests nothing, raises the probes' alarms.
    let alarms = &report["steady"]["alarms"];
    assert!(alarms["alarms"].as_u64().expect("alarms") > 0, "{report:#}");
    assert_eq!(alarms["missed"], 0, "{report:#}");
    assert!(report["catch_up"].is_null());
    let totals = &report["totals"];
    assert!(totals["sent"].as_u64().expect("sent") > 0);
    assert_eq!(totals["lost"], 0, "{report:#}");
    assert_eq!(totals["sent"], totals["stored"], "{report:#}");
    assert!(
        stdout.contains("messages received by each ingest process"),
        "{stdout}"
    );
}
