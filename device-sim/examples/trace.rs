//! Prints one patient's blood glucose and device readings, every `STEP` minutes, to look at
//! the model's dynamics.
//!
//! ```sh
//! cargo run -p chronicle-sim --example trace --release -- [PERSONA] [SEED] [INDEX] [DAYS] [STEP]
//! ```

use chronicle_sim::{Patient, Persona, SimReading};
use chrono::{Duration, TimeZone, Utc};

fn main() {
    let mut args = std::env::args().skip(1);
    let persona: Persona = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Persona::Type1Cgm);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let index: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let days: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let step: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(15);
    let patient = Patient::generate(persona, seed, index);
    println!("{patient:#?}");
    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .expect("a valid date");
    let mut sim = patient.simulator(start);
    let mut out = Vec::new();
    for k in 0..(days * 1440 / step.max(1)) {
        out.clear();
        let t = start + Duration::minutes((k + 1) * step.max(1));
        let bg = sim.blood_glucose().unwrap_or(f64::NAN);
        let ig = sim.interstitial_glucose().unwrap_or(f64::NAN);
        let local = patient.zone.local(sim.now());
        sim.advance_to(t, &mut out);
        let shown: Vec<String> = out
            .iter()
            .map(|r| match r {
                SimReading::Glucose(g) => format!("{:?}{}", g.value, g.unit),
                SimReading::BloodPressure(b) => {
                    format!("{}/{} p{:?}", b.systolic, b.diastolic, b.pulse)
                }
                SimReading::Treatment(t) => format!("{:?}", t.treatment),
            })
            .collect();
        println!(
            "{} BG {bg:6.1} IG {ig:6.1} {}",
            local.format("%a %H:%M"),
            shown.join(" ")
        );
    }
}
