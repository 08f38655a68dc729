//! Measures how fast the simulator generates readings (benchmark load generation depends on
//! it).
//!
//! ```sh
//! cargo run -p chronicle-sim --example throughput --release -- [PATIENTS] [DAYS] [THREADS] [MIX]
//! ```

use chronicle_sim::{PersonaMix, Population};
use chrono::{Duration, TimeZone, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let patients: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let days: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(90);
    let threads: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mix: PersonaMix = match args.next() {
        Some(text) => match text.parse() {
            Ok(mix) => mix,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        },
        None => PersonaMix::only(chronicle_sim::Persona::Type1Cgm),
    };
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date");
    let began = Instant::now();
    let population = Population::generate(1, patients, &mix);
    let readings = AtomicUsize::new(0);
    population.simulate(start, start + Duration::days(days), threads, |_, r| {
        readings.fetch_add(r.len(), Ordering::Relaxed);
    });
    let elapsed = began.elapsed().as_secs_f64();
    let n = readings.load(Ordering::Relaxed);
    println!(
        "{patients} patients ({mix}) × {days} days on {threads} threads: {n} readings in \
         {elapsed:.1} s ({:.0} patient-days/s, {:.0} readings/s)",
        patients as f64 * days as f64 / elapsed,
        n as f64 / elapsed
    );
}
