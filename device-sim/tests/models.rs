//! The simulator's models against their targets: determinism, realistic 14-day glucose and
//! blood-pressure metrics per persona, CGM cadence and gaps, clipping, meter accuracy, and
//! readings that Chronicle's own wire validation accepts.

use chronicle_domain::wire::{DecodeLimits, parse_message, validate_readings};
use chronicle_domain::{DeviceKind, GlucoseUnit};
use chronicle_sim::bp::BpDay;
use chronicle_sim::metrics::{BpMetrics, Evaluation, GlucoseMetrics, evaluate};
use chronicle_sim::{
    CgmSpec, DeviceSpec, GlucoseValue, Intervention, Patient, PatientSim, Persona, PersonaMix,
    Population, SimReading, batch_json,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

const SEED: u64 = 2026;
/// Patients per persona in the cohort tests.
const COHORT: u64 = 8;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .expect("a valid date")
}

fn cohort(persona: Persona, days: i64) -> Vec<(Patient, Evaluation)> {
    (0..COHORT)
        .map(|i| {
            let p = Patient::generate(persona, SEED, i);
            let e = evaluate(&p, start(), days);
            (p, e)
        })
        .collect()
}

/// Metrics of all patients' CGM readings pooled, plus each patient's.
fn pooled(cohort: &[(Patient, Evaluation)]) -> (GlucoseMetrics, Vec<GlucoseMetrics>) {
    let each: Vec<GlucoseMetrics> = cohort
        .iter()
        .map(|(_, e)| e.glucose.expect("a glucose persona"))
        .collect();
    // Pool by weighting each patient's metrics by its readings.
    let n: usize = each.iter().map(|m| m.count).sum();
    let w = |f: fn(&GlucoseMetrics) -> f64| {
        each.iter().map(|m| f(m) * m.count as f64).sum::<f64>() / n as f64
    };
    let mean = w(|m| m.mean);
    let second_moment = w(|m| m.sd * m.sd + m.mean * m.mean);
    let sd = (second_moment - mean * mean).sqrt();
    let all = GlucoseMetrics {
        count: n,
        mean,
        sd,
        cv: 100.0 * sd / mean,
        tir: w(|m| m.tir),
        below_70: w(|m| m.below_70),
        below_54: w(|m| m.below_54),
        above_180: w(|m| m.above_180),
        above_250: w(|m| m.above_250),
    };
    (all, each)
}

fn json_strings(readings: &[SimReading]) -> Vec<String> {
    readings.iter().map(|r| r.to_json().to_string()).collect()
}

#[test]
fn same_seed_same_patients_and_readings_different_seed_different() {
    let mix = PersonaMix::default();
    let a = Population::generate(7, 12, &mix);
    let b = Population::generate(7, 12, &mix);
    let c = Population::generate(8, 12, &mix);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let end = start() + Duration::days(2);
    for i in 0..12 {
        let ra = a.patients[i].readings(start(), end);
        let rb = b.patients[i].readings(start(), end);
        let rc = c.patients[i].readings(start(), end);
        assert!(!ra.is_empty(), "patient {i} reported nothing");
        assert_eq!(json_strings(&ra), json_strings(&rb), "patient {i}");
        assert_ne!(json_strings(&ra), json_strings(&rc), "patient {i}");
    }
    // A larger population extends a smaller one.
    let d = Population::generate(7, 20, &mix);
    assert_eq!(a.patients[..], d.patients[..12]);
}

#[test]
fn chunked_simulation_equals_one_shot() {
    let patient = Population::generate(11, 4, &PersonaMix::default()).patients[3].clone();
    let end = start() + Duration::days(3);
    let whole = patient.readings(start(), end);
    let mut sim = PatientSim::new(&patient, start());
    let mut chunked = Vec::new();
    let mut t = start();
    while t < end {
        t += Duration::minutes(37);
        sim.advance_to(t.min(end), &mut chunked);
    }
    assert_eq!(whole, chunked);
}

#[test]
fn well_controlled_type1_on_cgm_is_realistic() {
    let (all, each) = pooled(&cohort(Persona::Type1Cgm, 14));
    eprintln!("type 1 pooled: {all:?}");
    assert!((60.0..=85.0).contains(&all.tir), "TIR {}", all.tir);
    assert!((130.0..=170.0).contains(&all.mean), "mean {}", all.mean);
    assert!((25.0..=40.0).contains(&all.cv), "CV {}", all.cv);
    // Hypoglycaemia happens but stays near the consensus target (< 4 % below 70).
    assert!(
        all.below_70 > 0.2 && all.below_70 < 6.0,
        "<70 {}",
        all.below_70
    );
    for m in &each {
        // Every patient is recognisably "well controlled", with individual spread.
        assert!((50.0..=95.0).contains(&m.tir), "{m:?}");
        assert!((115.0..=185.0).contains(&m.mean), "{m:?}");
        assert!((18.0..=45.0).contains(&m.cv), "{m:?}");
    }
}

#[test]
fn poorly_controlled_type2_is_realistic() {
    let cohort = cohort(Persona::Type2Meter, 14);
    let (all, each) = pooled(&cohort);
    eprintln!("type 2 pooled: {all:?}");
    assert!((180.0..=260.0).contains(&all.mean), "mean {}", all.mean);
    assert!((20.0..=50.0).contains(&all.tir), "TIR {}", all.tir);
    for m in &each {
        assert!((160.0..=280.0).contains(&m.mean), "{m:?}");
        assert!(m.tir <= 75.0, "{m:?}");
    }
    // Meter users measure a few times a day.
    for (_, e) in &cohort {
        let (n, _) = e.meter.expect("a meter");
        let per_day = n as f64 / 14.0;
        assert!((0.8..=4.0).contains(&per_day), "{per_day} checks a day");
    }
}

#[test]
fn hypertensive_patients_are_hypertensive_at_home_with_a_visible_night_dip() {
    for persona in [Persona::Hypertension, Persona::Type2Hypertension] {
        for (patient, e) in cohort(persona, 7) {
            let bp = e.bp.expect("a cuff");
            // Two sessions a day of two readings, minus skipped sessions.
            assert!(
                bp.readings >= 14,
                "{persona}: {} readings in 7 days",
                bp.readings
            );
            assert!(
                bp.systolic >= 135.0 || bp.diastolic >= 85.0,
                "{persona}: home mean {:.0}/{:.0}",
                bp.systolic,
                bp.diastolic
            );
            let params = patient.bp.as_ref().expect("a BP model");
            let day = BpDay::typical(patient.routine.wake_minute, patient.routine.sleep_minute);
            let (night, awake) = params.night_day_means(&day);
            let dip = 1.0 - night.systolic / awake.systolic;
            assert!((0.01..=0.25).contains(&dip), "{persona}: dip {dip}");
            assert!(night.diastolic < awake.diastolic && night.pulse < awake.pulse);
        }
    }
}

#[test]
fn normotensive_patients_stay_below_130_80_and_dip_at_night() {
    for (patient, e) in cohort(Persona::Normotensive, 7) {
        let bp = e.bp.expect("a cuff");
        assert!(
            bp.systolic < 130.0 && bp.diastolic < 80.0,
            "home mean {:.0}/{:.0}",
            bp.systolic,
            bp.diastolic
        );
        let params = patient.bp.as_ref().expect("a BP model");
        let day = BpDay::typical(patient.routine.wake_minute, patient.routine.sleep_minute);
        let (night, awake) = params.night_day_means(&day);
        let dip = 1.0 - night.systolic / awake.systolic;
        assert!((0.08..=0.22).contains(&dip), "dip {dip}");
    }
}

#[test]
fn home_pressure_pairs_are_a_minute_apart_and_the_first_reads_higher() {
    let mut firsts = 0.0;
    let mut seconds = 0.0;
    let mut pairs = 0.0;
    for i in 0..COHORT {
        let patient = Patient::generate(Persona::Hypertension, SEED, i);
        let readings = patient.readings(start(), start() + Duration::days(14));
        let bp: Vec<_> = readings
            .iter()
            .filter_map(|r| match r {
                SimReading::BloodPressure(b) => Some(b),
                SimReading::Glucose(_) | SimReading::Treatment(_) => None,
            })
            .collect();
        for w in bp.windows(2) {
            if w[0].first_of_pair {
                assert!(!w[1].first_of_pair);
                assert_eq!(w[1].measured_at - w[0].measured_at, Duration::minutes(1));
                firsts += f64::from(w[0].systolic);
                seconds += f64::from(w[1].systolic);
                pairs += 1.0;
            }
        }
        let m = BpMetrics::of(&readings);
        // Morning surge: morning readings are higher than evening ones on average.
        assert!(m.morning_systolic.is_finite() && m.evening_systolic.is_finite());
    }
    assert!(pairs > 100.0);
    assert!(
        firsts / pairs > seconds / pairs + 1.0,
        "first-reading effect"
    );
}

#[test]
fn cgm_reads_every_five_minutes_with_warmup_and_signal_loss_gaps() {
    let days = 30;
    for i in 0..4 {
        let patient = Patient::generate(Persona::Type1Cgm, SEED, i);
        let Some(DeviceSpec::Cgm(spec)) = patient.devices.first().cloned() else {
            panic!("a type 1 patient has a CGM first");
        };
        let readings = patient.readings(start(), start() + Duration::days(days));
        // The CGM's app also logs the patient's treatments: only its readings count here.
        let times: Vec<DateTime<Utc>> = readings
            .iter()
            .filter(|r| r.is_measurement())
            .map(SimReading::measured_at_utc)
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "in time order");
        let expected = days * 1440 / 5;
        let coverage = times.len() as f64 / expected as f64;
        assert!((0.85..0.995).contains(&coverage), "coverage {coverage}");
        let mut saw_warmup = false;
        let mut saw_loss = false;
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            let minute = |t: DateTime<Utc>| t.timestamp().div_euclid(60);
            let (sensor_before, _) = spec.sensor_at(minute(w[0]));
            let (sensor_after, inserted) = spec.sensor_at(minute(w[1]));
            if sensor_before != sensor_after {
                // A sensor change: nothing during the warm-up.
                let first = Utc.timestamp_opt(inserted * 60, 0).single().expect("valid")
                    + Duration::minutes(i64::from(spec.warmup_min));
                assert!(w[1] >= first, "reading during warm-up");
                assert!(gap >= Duration::minutes(i64::from(spec.warmup_min)));
                saw_warmup = true;
            } else {
                // Same sensor: exactly 5 minutes, or a whole number of missed readings.
                assert_eq!(gap.num_seconds() % 300, 0, "gap {gap}");
                if gap > Duration::minutes(5) {
                    saw_loss = true;
                }
            }
        }
        assert!(saw_warmup, "30 days include a sensor change");
        assert!(saw_loss, "30 days include signal loss");
    }
}

#[test]
fn cgm_clips_at_lo_and_hi() {
    let mut patient = Patient::generate(Persona::Type1Cgm, SEED, 0)
        .with_devices(vec![
            DeviceSpec::Cgm(CgmSpec::ten_day(GlucoseUnit::MgDl)),
            DeviceSpec::Cgm(CgmSpec::fourteen_day(GlucoseUnit::MmolL)),
        ])
        .expect("a glucose patient takes CGMs");
    // Hypoglycaemia unawareness: nobody treats the low.
    if let Some(g) = patient.glucose.as_mut() {
        g.habits.hypo_threshold_mg_dl = 0.0;
    }
    let mut sim = PatientSim::new(&patient, start());
    // A large meal without insulin, then a gross overdose with no one to treat the low.
    sim.schedule(
        start() + Duration::hours(3),
        Intervention::Meal { carbs_g: 250.0 },
    );
    sim.schedule(
        start() + Duration::hours(4),
        Intervention::Meal { carbs_g: 200.0 },
    );
    sim.schedule(
        start() + Duration::hours(14),
        Intervention::Insulin { units: 60.0 },
    );
    let mut readings = Vec::new();
    sim.advance_to(start() + Duration::days(2), &mut readings);
    for device in 0..2 {
        let mine: Vec<_> = readings
            .iter()
            .filter(|r| r.device() == device && r.is_measurement())
            .collect();
        let lo = mine
            .iter()
            .filter(|r| matches!(r, SimReading::Glucose(g) if g.value == GlucoseValue::Lo))
            .count();
        let hi = mine
            .iter()
            .filter(|r| matches!(r, SimReading::Glucose(g) if g.value == GlucoseValue::Hi))
            .count();
        assert!(lo > 0 && hi > 0, "device {device}: {lo} LO, {hi} HI");
        for r in &mine {
            let v = r.glucose_mg_dl().expect("glucose");
            assert!((39.0..=401.0).contains(&v), "{v} mg/dL outside 40-400");
            if let SimReading::Glucose(g) = r {
                match g.value {
                    GlucoseValue::Lo => assert!(g.true_mg_dl < 70.0),
                    GlucoseValue::Hi => assert!(g.true_mg_dl > 300.0),
                    GlucoseValue::Number(_) => {}
                }
            }
        }
    }
}

#[test]
fn meter_error_is_within_15_percent_for_95_percent_of_readings() {
    let (mut n, mut ok) = (0usize, 0usize);
    for i in 0..COHORT {
        let patient = Patient::generate(Persona::Type2Meter, SEED, i);
        for r in patient.readings(start(), start() + Duration::days(60)) {
            let SimReading::Glucose(g) = &r else { continue };
            n += 1;
            let shown = r.glucose_mg_dl().expect("glucose");
            if (shown - g.true_mg_dl).abs() <= 0.15 * g.true_mg_dl {
                ok += 1;
            }
        }
    }
    assert!(n > 500, "{n} meter readings");
    let share = ok as f64 / n as f64;
    assert!(share >= 0.95, "{:.1} % within ±15 %", 100.0 * share);
}

#[test]
fn every_reading_passes_chronicles_wire_validation() {
    let population = Population::generate(99, 30, &PersonaMix::default());
    let end = start() + Duration::days(3);
    let limits = DecodeLimits::default();
    let mut units = std::collections::HashSet::new();
    let mut kinds = std::collections::HashSet::new();
    for patient in &population.patients {
        let readings = patient.readings(start(), end);
        for (device, spec) in patient.devices.iter().enumerate() {
            let kind: DeviceKind = spec.kind();
            kinds.insert(kind);
            if let Some(unit) = spec.glucose_unit() {
                units.insert(unit);
            }
            let mine: Vec<&SimReading> = readings.iter().filter(|r| r.device() == device).collect();
            assert!(
                !mine.is_empty(),
                "patient {} device {device}",
                patient.index
            );
            // One message per reading, as a live device sends them.
            for r in &mine {
                assert_eq!(r.device_kind(), kind);
                let payload = r.to_json().to_string();
                let message = parse_message(payload.as_bytes(), &limits).expect("envelope");
                let (accepted, rejected) = validate_readings(&message, kind, end, &limits);
                assert!(rejected.is_empty(), "{payload}: {rejected:?}");
                assert_eq!(accepted.len(), 1);
                assert_eq!(accepted[0].reading.measured_at(), r.measured_at_utc());
            }
            // And as a batch, as a meter syncing its memory.
            for chunk in mine.chunks(500) {
                let payload = batch_json(Some("sync"), chunk.iter().copied()).to_string();
                let message = parse_message(payload.as_bytes(), &limits).expect("envelope");
                let (accepted, rejected) = validate_readings(&message, kind, end, &limits);
                assert!(rejected.is_empty(), "{rejected:?}");
                assert_eq!(accepted.len(), chunk.len());
            }
        }
    }
    assert_eq!(kinds.len(), 3, "every device kind is exercised");
    assert_eq!(units.len(), 2, "both glucose units are exercised");
}

#[test]
fn a_device_needs_its_model() {
    let cuff_only = Patient::generate(Persona::Normotensive, SEED, 0);
    assert!(
        cuff_only
            .with_devices(vec![DeviceSpec::Cgm(CgmSpec::ten_day(GlucoseUnit::MgDl))])
            .is_err()
    );
}

#[test]
fn insulin_users_log_their_boluses_carbohydrates_and_sensor_changes_through_their_cgm() {
    use chronicle_sim::{Treatment, TreatmentSample};
    let days = 14;
    let patient = Patient::generate(Persona::Type1Cgm, SEED, 0);
    let readings = patient.readings(start(), start() + Duration::days(days));
    let treatments: Vec<&TreatmentSample> = readings
        .iter()
        .filter_map(|r| match r {
            SimReading::Treatment(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(
        treatments
            .iter()
            .all(|t| t.device == 0 && t.device_kind == DeviceKind::Cgm),
        "logged through the CGM's app"
    );
    let count = |f: fn(&Treatment) -> bool| treatments.iter().filter(|t| f(&t.treatment)).count();
    let boluses = count(|t| matches!(t, Treatment::Bolus { .. }));
    let meals = count(|t| matches!(t, Treatment::Carbohydrates { hypo: false, .. }));
    let sensors = count(|t| matches!(t, Treatment::SensorChange));
    // Three meals a day, most of them bolused; a sensor lasts 10–15 days.
    assert!(
        boluses >= 2 * days as usize,
        "{boluses} boluses in {days} days"
    );
    assert!(meals >= 2 * days as usize, "{meals} meals in {days} days");
    assert!(sensors >= 1, "{sensors} sensor changes in {days} days");
    for t in &treatments {
        match t.treatment {
            Treatment::Bolus { units } => {
                assert!(units > 0.0 && units <= 100.0 && (units * 2.0).fract().abs() < 1e-9);
            }
            Treatment::Carbohydrates { grams, .. } => assert!((1.0..=500.0).contains(&grams)),
            Treatment::Exercise { minutes } => assert!((1..=1440).contains(&minutes)),
            Treatment::SensorChange => {}
        }
    }
    // No two treatments of one kind at one instant: the server would keep only one.
    let mut keys = std::collections::HashSet::new();
    for t in &treatments {
        let kind = std::mem::discriminant(&t.treatment);
        assert!(
            keys.insert((kind, t.measured_at)),
            "two at {}",
            t.measured_at
        );
    }

    // Patients without insulin log nothing.
    for persona in [Persona::Type2Meter, Persona::Hypertension] {
        let patient = Patient::generate(persona, SEED, 0);
        let quiet = patient
            .readings(start(), start() + Duration::days(3))
            .iter()
            .all(SimReading::is_measurement);
        assert!(quiet, "{persona:?} logs no treatments");
    }
}
