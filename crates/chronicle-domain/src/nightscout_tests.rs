use super::*;
use crate::device::DeviceKind;
use crate::reading::{GlucoseSource, Reading};
use crate::rejection::RejectionReason;
use crate::treatment::TreatmentKind;
use crate::wire::{DecodeLimits, IndexedReading, parse_message, validate_readings};
use crate::{Rejection, Treatment};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("fixed test time parses")
}

/// The records through the ingest's own validation, as a glucose device's upload.
fn validate(records: Vec<Value>) -> (Vec<IndexedReading>, Vec<Rejection>) {
    let limits = DecodeLimits::default();
    let payload = json!({ "readings": records }).to_string();
    let message = parse_message(payload.as_bytes(), &limits).expect("envelope");
    validate_readings(&message, DeviceKind::Meter, now(), &limits)
}

fn treatment(reading: &Reading) -> &Treatment {
    match reading {
        Reading::Treatment(t) => t,
        other => panic!("expected a treatment, got {other:?}"),
    }
}

#[test]
fn sgv_and_mbg_entries_become_glucose_readings_in_the_uploaders_offset() {
    // 2026-03-01T11:00:00Z
    let ms = 1_772_362_800_000_i64;
    let records = entries_to_records(&[
        json!({"type": "sgv", "sgv": 142, "date": ms, "utcOffset": 60, "direction": "Flat",
               "device": "xDrip-DexcomG6", "_id": "abc"}),
        json!({"type": "mbg", "mbg": 98, "dateString": "2026-03-01T11:05:00+01:00"}),
    ]);
    assert_eq!(records[0]["measured_at"], "2026-03-01T12:00:00+01:00");
    assert_eq!(records[0]["source"], "cgm");
    assert_eq!(records[1]["source"], "meter");
    // A meter may not send CGM values, so only the finger stick passes a meter's validation;
    // the upload credential's device decides which sources it may send.
    let (accepted, rejected) = validate(records);
    assert_eq!(rejected[0].reason, RejectionReason::WrongDeviceKind);
    let Reading::Glucose(g) = &accepted[0].reading else {
        panic!("glucose expected");
    };
    assert_eq!((g.value.get(), g.source), (98.0, GlucoseSource::Meter));
    assert_eq!(g.utc_offset_minutes, 60);
}

#[test]
fn what_cannot_be_translated_is_refused_with_the_original_kept() {
    let records = entries_to_records(&[
        json!({"type": "cal", "slope": 900, "intercept": 30000, "scale": 1, "date": 1}),
        json!({"type": "sgv", "sgv": 5, "date": 1_772_362_800_000_i64}),
        json!("not an entry"),
    ]);
    assert_eq!(records[0]["nightscout"]["slope"], 900);
    let (accepted, rejected) = validate(records);
    assert!(accepted.is_empty());
    assert!(
        rejected
            .iter()
            .all(|r| r.reason == RejectionReason::UnknownType),
        "{rejected:?}"
    );
    assert!(
        rejected[1]
            .raw
            .as_deref()
            .is_some_and(|raw| raw.contains("\"sgv\":5"))
    );
}

#[test]
fn a_meal_bolus_is_two_records_and_a_temp_basal_is_what_it_delivered() {
    let at = "2026-03-01T11:30:00Z";
    let records = treatments_to_records(&[
        json!({"eventType": "Meal Bolus", "insulin": 4.5, "carbs": 45, "created_at": at,
               "notes": "lunch", "enteredBy": "xdrip", "_id": "t1"}),
        json!({"eventType": "Temp Basal", "absolute": 0.8, "rate": 0.8, "duration": 30,
               "created_at": at}),
        json!({"eventType": "Exercise", "duration": 40, "created_at": at}),
        json!({"eventType": "Sensor Start", "created_at": at}),
        json!({"eventType": "Note", "notes": "shaky", "created_at": at}),
        json!({"eventType": "BG Check", "glucose": 6.2, "units": "mmol", "created_at": at}),
        json!({"eventType": "Correction Bolus", "insulin": 1.5, "created_at": at}),
    ]);
    let (accepted, rejected) = validate(records);
    assert!(rejected.is_empty(), "{rejected:?}");
    let kinds: Vec<&str> = accepted.iter().map(|r| r.reading.series()).collect();
    assert_eq!(
        kinds,
        [
            "bolus_insulin",
            "carbohydrates",
            "basal_insulin",
            "exercise",
            "sensor_start",
            "note",
            "glucose",
            "bolus_insulin"
        ]
    );
    let bolus = treatment(&accepted[0].reading);
    assert_eq!(bolus.event.amount(), Some(4.5));
    assert_eq!(bolus.note.as_deref(), Some("lunch"));
    assert_eq!(bolus.device_reading_id.as_deref(), Some("t1#0"));
    assert_eq!(
        treatment(&accepted[1].reading).device_reading_id.as_deref(),
        Some("t1#1")
    );
    let basal = treatment(&accepted[2].reading);
    assert_eq!(basal.event.kind(), TreatmentKind::BasalInsulin);
    let units = basal.event.amount().expect("units");
    assert!((units - 0.4).abs() < 1e-9, "{units}");
    assert_eq!(basal.event.duration().map(|d| d.get()), Some(30));
    assert_eq!(
        treatment(&accepted[5].reading).note.as_deref(),
        Some("shaky")
    );
}

#[test]
fn unknown_event_types_and_missing_times_are_refused_not_dropped() {
    let records = treatments_to_records(&[
        json!({"eventType": "Profile Switch", "profile": "Default", "created_at": "2026-03-01T11:00:00Z"}),
        json!({"eventType": "Carb Correction", "carbs": 15}),
    ]);
    let (accepted, rejected) = validate(records);
    assert!(accepted.is_empty());
    let reasons: Vec<RejectionReason> = rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [RejectionReason::UnknownType, RejectionReason::MissingField]
    );
}

#[test]
fn a_suspension_is_zero_units_of_basal_but_a_zero_bolus_is_refused() {
    let at = "2026-03-01T11:30:00Z";
    let (accepted, rejected) = validate(treatments_to_records(&[
        json!({"eventType": "Temp Basal", "absolute": 0, "rate": 0, "duration": 30,
               "created_at": at}),
        json!({"eventType": "Temp Basal", "absolute": -0.5, "duration": 30, "created_at": at}),
    ]));
    let suspension = treatment(&accepted[0].reading);
    assert_eq!(suspension.event.kind(), TreatmentKind::BasalInsulin);
    assert_eq!(suspension.event.amount(), Some(0.0));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].reason, RejectionReason::OutOfRange);
    // Straight on the wire: a 0 U bolus is no dose.
    let (_, rejected) = validate(vec![json!({"type": "insulin", "delivery": "bolus",
        "units": 0, "measured_at": at})]);
    assert_eq!(rejected[0].reason, RejectionReason::OutOfRange);
}
