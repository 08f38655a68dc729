//! Prints the persona table of `docs/simulator.md`: 14-day metrics per persona for a fixed
//! seed, as the tests compute them.
//!
//! ```sh
//! cargo run -p chronicle-sim --example persona_table --release [-- SEED PATIENTS_PER_PERSONA]
//! ```

use chronicle_sim::bp::BpDay;
use chronicle_sim::metrics::{Evaluation, evaluate};
use chronicle_sim::{Patient, Persona};
use chrono::{TimeZone, Utc};

fn median_range(mut v: Vec<f64>) -> String {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(f64::total_cmp);
    let mid = v[v.len() / 2];
    format!("{mid:.1} ({:.1}–{:.1})", v[0], v[v.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let per_persona: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .expect("a valid date");

    let mut evaluations: Vec<(Persona, Patient, Evaluation)> = Vec::new();
    for persona in Persona::ALL {
        for i in 0..per_persona {
            let patient = Patient::generate(persona, seed, i);
            let e = evaluate(&patient, start, 14);
            evaluations.push((persona, patient, e));
        }
    }

    println!(
        "Seed {seed}, {per_persona} patients per persona, 14 days from {}; median (min–max) \
         over patients.\n",
        start.format("%Y-%m-%d")
    );
    println!("Glucose (CGM readings, mg/dL and % of readings; blinded CGM for meter users):\n");
    println!(
        "| persona | mean | SD | CV % | TIR 70–180 | <70 | <54 | >180 | >250 | CGM MARD % | meter within ±15 % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for persona in Persona::ALL {
        let rows: Vec<&Evaluation> = evaluations
            .iter()
            .filter(|(p, _, _)| *p == persona)
            .map(|(_, _, e)| e)
            .collect();
        let g: Vec<_> = rows.iter().filter_map(|e| e.glucose).collect();
        if g.is_empty() {
            continue;
        }
        let col = |f: fn(&chronicle_sim::metrics::GlucoseMetrics) -> f64| {
            median_range(g.iter().map(f).collect())
        };
        let meter: Vec<f64> = rows.iter().filter_map(|e| e.meter.map(|m| m.1)).collect();
        println!(
            "| {persona} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            col(|m| m.mean),
            col(|m| m.sd),
            col(|m| m.cv),
            col(|m| m.tir),
            col(|m| m.below_70),
            col(|m| m.below_54),
            col(|m| m.above_180),
            col(|m| m.above_250),
            median_range(rows.iter().filter_map(|e| e.cgm_mard).collect()),
            median_range(meter),
        );
    }

    println!(
        "\nHome blood pressure (mm Hg, pairs morning and evening; model night/day from the same patients):\n"
    );
    println!(
        "| persona | systolic | diastolic | pulse | morning sys/dia | evening sys/dia | model night dip % (sys) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for persona in Persona::ALL {
        let rows: Vec<_> = evaluations
            .iter()
            .filter(|(p, _, e)| *p == persona && e.bp.is_some())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let bp: Vec<_> = rows.iter().filter_map(|(_, _, e)| e.bp).collect();
        let col = |f: fn(&chronicle_sim::metrics::BpMetrics) -> f64| {
            median_range(bp.iter().map(f).collect())
        };
        let dips: Vec<f64> = rows
            .iter()
            .filter_map(|(_, patient, _)| {
                let params = patient.bp.as_ref()?;
                let day = BpDay::typical(patient.routine.wake_minute, patient.routine.sleep_minute);
                let (night, awake) = params.night_day_means(&day);
                Some(100.0 * (1.0 - night.systolic / awake.systolic))
            })
            .collect();
        println!(
            "| {persona} | {} | {} | {} | {} / {} | {} / {} | {} |",
            col(|m| m.systolic),
            col(|m| m.diastolic),
            col(|m| m.pulse),
            col(|m| m.morning_systolic),
            col(|m| m.morning_diastolic),
            col(|m| m.evening_systolic),
            col(|m| m.evening_diastolic),
            median_range(dips),
        );
    }
}
