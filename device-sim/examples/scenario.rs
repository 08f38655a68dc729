//! Prints a scenario's readings and what the oracle makes of them, to look at a scenario.
//!
//! ```sh
//! cargo run -p chronicle-sim --example scenario -- nocturnal_hypoglycemia [SEED] [INDEX] [VARIANT]
//! ```
//! Without a variant it shows the one `chronicle-sim scenario` would play.

use chronicle_sim::scenario::{self, ScenarioKind};
use chronicle_sim::{SimReading, Zone};
use chrono::{Duration, TimeZone, Utc};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind: ScenarioKind = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ScenarioKind::NocturnalHypoglycemia);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let index: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let variant: Option<u32> = args.next().and_then(|s| s.parse().ok());
    let now = Utc
        .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
        .single()
        .expect("a valid date");
    let zone = Zone::utc();
    let at = kind.default_at(&zone, now, true, Duration::zero());
    let s = match variant {
        Some(v) => scenario::attempt(kind, seed, index, v, at, &zone),
        None => match scenario::build(kind, seed, index, at, &zone) {
            Ok(s) => s,
            Err(e) => {
                println!("{e}");
                scenario::attempt(kind, seed, index, 0, at, &zone)
            }
        },
    };
    for r in &s.readings {
        match r {
            SimReading::Glucose(g) => println!(
                "{} {:>6.1} mg/dL (blood {:>6.1})",
                r.measured_at(),
                r.glucose_mg_dl().unwrap_or(f64::NAN),
                g.true_mg_dl
            ),
            SimReading::BloodPressure(b) => {
                println!("{} {}/{}", r.measured_at(), b.systolic, b.diastolic)
            }
            SimReading::Treatment(t) => println!("{} {:?}", r.measured_at(), t.treatment),
        }
    }
    println!("variant {} actions {:?}", s.variant, s.actions);
    println!("{:#?}", s.assessment);
}
