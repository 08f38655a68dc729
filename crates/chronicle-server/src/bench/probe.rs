//! What the benchmark reads about the machine and the processes under test: the CPU model,
//! memory, CPU time per process (from `/proc`), and the server's Prometheus metrics.
//!
//! CPU times let a reader see where the cores went in each phase (publishers and broker,
//! server, PostgreSQL), which is what decides throughput on a small machine.

use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// `/proc` counts CPU time in USER_HZ ticks, which Linux fixes at 100 per second for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: chronicle_embedded::machine_memory_bytes()
                .map_or(0.0, |bytes| bytes as f64 / (1024.0 * 1024.0 * 1024.0)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// CPU time used so far by the machine and by the processes of interest.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// Busy time of all CPUs together (user, system, irq, steal...; not idle or iowait).
    machine_busy: f64,
    /// This process: the publishers, and in the broker-only phase the broker and stand-in.
    bench: f64,
    server: f64,
    postgres: f64,
}

/// CPU seconds spent during one phase, by whom.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    /// All CPUs together; at most wall time × CPUs.
    pub machine_busy_seconds: f64,
    /// Machine busy time over (wall time × CPUs), in percent.
    pub machine_busy_percent: f64,
    /// The benchmark process: MQTT devices (and, in the broker-only phase, the broker and the
    /// stand-in subscriber, which run inside it).
    pub bench_seconds: f64,
    /// The `chronicle serve` processes: broker, ingest and HTTP (and the follow-up work as
    /// deployed).
    pub server_seconds: f64,
    /// The private PostgreSQL: the postmaster and its children, those that ended during the
    /// phase included.
    pub postgres_seconds: f64,
    /// Busy time none of the above accounts for: the kernel's own work, an external broker,
    /// and anything else running on the machine (which would skew the figures).
    pub other_seconds: f64,
}

impl CpuSample {
    /// Samples now. `servers` are the pids of the `chronicle serve` processes (one, or a
    /// scaled-out deployment's), `postmaster` PostgreSQL's.
    pub fn take(servers: &[u32], postmaster: Option<u32>) -> CpuSample {
        let server = servers.iter().filter_map(|pid| process_cpu(*pid)).sum();
        let postgres = postmaster.map(family_cpu).unwrap_or(0.0);
        CpuSample {
            machine_busy: machine_busy().unwrap_or(0.0),
            bench: process_cpu(std::process::id()).unwrap_or(0.0),
            server,
            postgres,
        }
    }

    /// What was spent between `self` and `later`, over `wall` on `cpus` CPUs.
    pub fn until(&self, later: &CpuSample, wall: Duration, cpus: usize) -> CpuUse {
        let busy = later.machine_busy - self.machine_busy;
        let capacity = wall.as_secs_f64() * cpus as f64;
        CpuUse {
            machine_busy_seconds: busy,
            machine_busy_percent: if capacity > 0.0 {
                100.0 * busy / capacity
            } else {
                0.0
            },
            bench_seconds: later.bench - self.bench,
            server_seconds: later.server - self.server,
            postgres_seconds: later.postgres - self.postgres,
            other_seconds: (busy
                - (later.bench - self.bench)
                - (later.server - self.server)
                - (later.postgres - self.postgres))
                .max(0.0),
        }
    }
}

/// Busy CPU seconds of the whole machine since boot, from the first line of `/proc/stat`.
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0.0);
    Some((total - idle) / TICKS_PER_SECOND)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may itself hold spaces.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User plus system CPU seconds of one process (all its threads).
fn process_cpu(pid: u32) -> Option<f64> {
    // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
    cpu_seconds_at(pid, 11)
}

/// CPU seconds of the children a process has waited for (they ended).
fn ended_children_cpu(pid: u32) -> Option<f64> {
    // After the name: ... cutime(13) cstime(14).
    cpu_seconds_at(pid, 13)
}

/// The user time at field `user` of `/proc/<pid>/stat` (after the name) plus the system time
/// in the field after it, in seconds.
fn cpu_seconds_at(pid: u32, user: usize) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let user_ticks: f64 = fields.get(user)?.parse().ok()?;
    let system_ticks: f64 = fields.get(user + 1)?.parse().ok()?;
    Some((user_ticks + system_ticks) / TICKS_PER_SECOND)
}

/// CPU seconds of a process, its live children and the children that ended (PostgreSQL's
/// backends each start their own session, so the parent link is what ties them to the
/// postmaster; a backend that ended is counted in the postmaster's children's time, so the
/// figure never goes down when connections close).
fn family_cpu(parent: u32) -> f64 {
    ended_children_cpu(parent).unwrap_or(0.0) + live_family_cpu(parent)
}

/// CPU seconds of a process and its live children.
fn live_family_cpu(parent: u32) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let fields = stat_fields(pid)?;
            let ppid: u32 = fields.get(1)?.parse().ok()?;
            (pid == parent || ppid == parent)
                .then(|| process_cpu(pid))
                .flatten()
        })
        .sum()
}

/// The postmaster's pid, from the first line of `postmaster.pid` in the cluster directory.
pub fn postmaster_pid(cluster_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(cluster_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The peak resident set ("high water mark") of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM line in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// The sums and counts of the server's histograms and its counters, by series name, from the
/// Prometheus text of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSample(HashMap<String, f64>);

impl MetricsSample {
    pub fn parse(text: &str) -> MetricsSample {
        let values = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        MetricsSample(values)
    }

    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// The `q` quantile (0–1) of a histogram's observations between `self` and `later`, in
    /// the histogram's unit, as the upper bound of the bucket it falls in (Prometheus'
    /// `histogram_quantile` without interpolation); `None` without observations.
    pub fn quantile_until(&self, later: &MetricsSample, histogram: &str, q: f64) -> Option<f64> {
        let prefix = format!("{histogram}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = later
            .0
            .iter()
            .filter_map(|(name, after)| {
                let bound = name.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, after - self.get(name)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(bound, _)| *bound)
    }

    /// Messages the ingest received between `self` and `later` (each is timed once).
    pub fn messages_until(&self, later: &MetricsSample) -> f64 {
        let name = "chronicle_ingest_lag_seconds_count";
        later.get(name) - self.get(name)
    }

    /// How the ingest's batches looked between `self` and `later`.
    pub fn batches_until(&self, later: &MetricsSample, wall: Duration) -> BatchProfile {
        let delta = |name: &str| later.get(name) - self.get(name);
        let batches = delta("chronicle_ingest_commit_seconds_count");
        let per_batch = |name: &str| {
            if batches > 0.0 {
                delta(name) / batches
            } else {
                0.0
            }
        };
        let commit_seconds = delta("chronicle_ingest_commit_seconds_sum");
        let lag_count = delta("chronicle_ingest_lag_seconds_count");
        BatchProfile {
            batches: batches.round() as u64,
            mean_messages_per_batch: per_batch("chronicle_ingest_batch_messages_sum"),
            mean_readings_per_batch: per_batch("chronicle_ingest_batch_readings_sum"),
            mean_commit_ms: 1000.0 * per_batch("chronicle_ingest_commit_seconds_sum"),
            commit_busy_percent: if wall.is_zero() {
                0.0
            } else {
                100.0 * commit_seconds / wall.as_secs_f64()
            },
            mean_lag_ms: if lag_count > 0.0 {
                1000.0 * delta("chronicle_ingest_lag_seconds_sum") / lag_count
            } else {
                0.0
            },
            storage_errors: delta("chronicle_ingest_storage_errors_total").round() as u64,
        }
    }
}

/// The server's own view of a phase, from `/metrics`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchProfile {
    /// Transactions the ingest committed.
    pub batches: u64,
    pub mean_messages_per_batch: f64,
    pub mean_readings_per_batch: f64,
    /// Mean time to write and commit one batch (`chronicle_ingest_commit_seconds`).
    pub mean_commit_ms: f64,
    /// Time spent in commits over wall time: near 100 % the database path is saturated, far
    /// below it the ingest waits for messages (batching, broker windows).
    pub commit_busy_percent: f64,
    /// Mean time from a message's arrival at the ingest to its batch's commit
    /// (`chronicle_ingest_lag_seconds`).
    pub mean_lag_ms: f64,
    pub storage_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_profile_from_metrics_deltas() {
        let before = MetricsSample::parse(
            "# HELP x\nchronicle_ingest_commit_seconds_sum 1.0\n\
             chronicle_ingest_commit_seconds_count 10\n\
             chronicle_ingest_batch_messages_sum 100\n\
             chronicle_ingest_commit_seconds_bucket{le=\"0.001\"} 3\n",
        );
        let after = MetricsSample::parse(
            "chronicle_ingest_commit_seconds_sum 3.0\n\
             chronicle_ingest_commit_seconds_count 30\n\
             chronicle_ingest_batch_messages_sum 2100\n# EOF\n",
        );
        let profile = before.batches_until(&after, Duration::from_secs(4));
        assert_eq!(profile.batches, 20);
        assert!((profile.mean_messages_per_batch - 100.0).abs() < 1e-9);
        assert!((profile.mean_commit_ms - 100.0).abs() < 1e-9);
        assert!((profile.commit_busy_percent - 50.0).abs() < 1e-9);
    }

    #[test]
    fn histogram_quantile_from_bucket_deltas() {
        let before = MetricsSample::parse(
            "lag_bucket{le=\"0.1\"} 10\nlag_bucket{le=\"1\"} 10\nlag_bucket{le=\"+Inf\"} 10\n",
        );
        let after = MetricsSample::parse(
            "lag_bucket{le=\"0.1\"} 108\nlag_bucket{le=\"1\"} 109\nlag_bucket{le=\"+Inf\"} 110\n",
        );
        assert_eq!(before.quantile_until(&after, "lag", 0.5), Some(0.1));
        assert_eq!(before.quantile_until(&after, "lag", 0.99), Some(1.0));
        assert_eq!(
            before.quantile_until(&after, "lag", 1.0),
            Some(f64::INFINITY)
        );
        assert_eq!(after.quantile_until(&after, "lag", 0.5), None);
    }
}
