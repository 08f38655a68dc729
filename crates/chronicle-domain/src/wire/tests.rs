use super::*;
use crate::fuzzing::{self, nasty_text};
use proptest::prelude::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("fixed test time parses")
}

fn decode(payload: &Value, kind: DeviceKind) -> (Vec<IndexedReading>, Vec<Rejection>) {
    let bytes = payload.to_string().into_bytes();
    let limits = DecodeLimits::default();
    let message = parse_message(&bytes, &limits).expect("envelope is valid");
    validate_readings(&message, kind, now(), &limits)
}

/// Wraps the reading in a batch, so even a reading without `type` reaches validation.
fn only_rejection(payload: Value, kind: DeviceKind) -> RejectionReason {
    let (accepted, rejected) = decode(&json!({ "readings": [payload.clone()] }), kind);
    assert!(accepted.is_empty(), "expected a rejection for {payload}");
    assert_eq!(rejected.len(), 1);
    rejected[0].reason
}

fn glucose_value(payload: Value) -> GlucoseReading {
    let (accepted, rejected) = decode(&payload, DeviceKind::Cgm);
    assert!(rejected.is_empty(), "unexpected rejection {rejected:?}");
    match accepted.into_iter().next().map(|r| r.reading) {
        Some(Reading::Glucose(g)) => g,
        other => panic!("expected a glucose reading, got {other:?}"),
    }
}

#[test]
fn single_glucose_in_mg_dl() {
    let g = glucose_value(json!({
        "type": "glucose", "value": 112, "unit": "mg/dL",
        "measured_at": "2026-03-01T08:30:00+01:00", "id": "r-1"
    }));
    assert_eq!(g.value.get(), 112.0);
    assert_eq!(g.original_unit, GlucoseUnit::MgDl);
    assert_eq!(g.source, GlucoseSource::Cgm);
    assert_eq!(g.utc_offset_minutes, 60);
    assert_eq!(g.measured_at.to_rfc3339(), "2026-03-01T07:30:00+00:00");
    assert_eq!(g.device_reading_id.as_deref(), Some("r-1"));
}

#[test]
fn glucose_in_mmol_is_normalized_and_original_kept() {
    let g = glucose_value(json!({
        "type": "glucose", "value": 5.5, "unit": "mmol/L", "measured_at": "2026-03-01T08:30:00Z"
    }));
    assert!((g.value.get() - 5.5 * 18.01559).abs() < 1e-9);
    assert_eq!(g.original_value, Some(5.5));
    assert_eq!(g.original_unit, GlucoseUnit::MmolL);
}

#[test]
fn lo_and_hi_are_stored_at_the_sensor_limits() {
    let lo = glucose_value(json!({
        "type": "glucose", "value": "LO", "unit": "mg/dL", "measured_at": "2026-03-01T08:30:00Z"
    }));
    assert_eq!(
        (lo.value.get(), lo.flag, lo.original_value),
        (40.0, Some(GlucoseFlag::Lo), None)
    );
    let hi = glucose_value(json!({
        "type": "glucose", "value": "HI", "unit": "mmol/L", "measured_at": "2026-03-01T08:30:00Z"
    }));
    assert_eq!((hi.value.get(), hi.flag), (400.0, Some(GlucoseFlag::Hi)));
}

#[test]
fn batch_keeps_good_readings_and_refuses_bad_ones_by_index() {
    let payload = json!({"message_id": "m-7", "readings": [
        {"type": "glucose", "value": 100, "unit": "mg/dL", "measured_at": "2026-03-01T08:00:00Z"},
        {"type": "glucose", "value": 0, "unit": "mg/dL", "measured_at": "2026-03-01T08:05:00Z", "id": 42},
        {"type": "glucose", "value": 101, "unit": "mg/dL", "measured_at": "2026-03-01T08:10:00Z"},
    ]});
    let bytes = payload.to_string().into_bytes();
    let message = parse_message(&bytes, &DecodeLimits::default()).expect("valid envelope");
    assert_eq!(message.message_id.as_deref(), Some("m-7"));
    let (accepted, rejected) =
        validate_readings(&message, DeviceKind::Cgm, now(), &DecodeLimits::default());
    assert_eq!(
        accepted.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, Some(1));
    assert_eq!(rejected[0].reason, RejectionReason::OutOfRange);
    assert_eq!(rejected[0].device_reading_id.as_deref(), Some("42"));
    assert!(
        rejected[0]
            .raw
            .as_deref()
            .is_some_and(|raw| raw.contains("\"value\":0"))
    );
}

#[test]
fn every_reading_rejection_reason() {
    let t = "2026-03-01T08:00:00Z";
    let cases: Vec<(Value, DeviceKind, RejectionReason)> = vec![
        (
            json!({"type": "glucose", "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "glucose", "value": 90, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL"}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"value": 90, "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "glucose", "value": "90", "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": t, "source": "eye"}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "ketone", "value": 1, "unit": "mmol/L", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::UnknownType,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::UnknownUnit,
        ),
        (
            json!({"type": "glucose", "value": 1001, "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "glucose", "value": -3, "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "glucose", "value": 56, "unit": "mmol/L", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "2026-03-01T08:00:00"}),
            DeviceKind::Cgm,
            RejectionReason::InvalidTimestamp,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "yesterday"}),
            DeviceKind::Cgm,
            RejectionReason::InvalidTimestamp,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "2026-03-01T12:10:01Z"}),
            DeviceKind::Cgm,
            RejectionReason::FutureTimestamp,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "1900-01-01T00:00:00Z"}),
            DeviceKind::Cgm,
            RejectionReason::StaleTimestamp,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "2025-02-28T11:59:59Z"}),
            DeviceKind::Cgm,
            RejectionReason::StaleTimestamp,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::WrongDeviceKind,
        ),
        (
            json!({"type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": t, "source": "meter"}),
            DeviceKind::Cgm,
            RejectionReason::WrongDeviceKind,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 120, "diastolic": 80, "measured_at": t}),
            DeviceKind::Meter,
            RejectionReason::WrongDeviceKind,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 120, "diastolic": 80, "unit": "kPa", "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::UnknownUnit,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 301, "diastolic": 80, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 120, "diastolic": 19, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 80, "diastolic": 80, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 120, "diastolic": 80, "pulse": 400, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "blood_pressure", "systolic": 120.5, "diastolic": 80, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "blood_pressure", "diastolic": 80, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::MissingField,
        ),
    ];
    for (payload, kind, expected) in cases {
        assert_eq!(
            only_rejection(payload.clone(), kind),
            expected,
            "payload {payload}"
        );
    }
}

#[test]
fn future_skew_boundary_is_inclusive() {
    let g = glucose_value(json!({
        "type": "glucose", "value": 90, "unit": "mg/dL", "measured_at": "2026-03-01T12:10:00Z"
    }));
    assert_eq!(g.value.get(), 90.0);
}

#[test]
fn blood_pressure_reading() {
    let (accepted, rejected) = decode(
        &json!({"type": "blood_pressure", "systolic": 128, "diastolic": 82, "pulse": 71,
                "unit": "mm[Hg]", "measured_at": "2026-03-01T07:02:00-05:00"}),
        DeviceKind::Bp,
    );
    assert!(rejected.is_empty());
    let Some(Reading::BloodPressure(bp)) = accepted.into_iter().next().map(|r| r.reading) else {
        panic!("expected a blood-pressure reading");
    };
    assert_eq!((bp.systolic.get(), bp.diastolic.get()), (128, 82));
    assert_eq!(bp.pulse.map(Pulse::get), Some(71));
    assert_eq!(bp.utc_offset_minutes, -300);
}

fn treatments(payload: Value) -> Vec<crate::treatment::Treatment> {
    let (accepted, rejected) = decode(&payload, DeviceKind::Cgm);
    assert!(rejected.is_empty(), "unexpected rejection {rejected:?}");
    accepted
        .into_iter()
        .map(|r| match r.reading {
            Reading::Treatment(t) => t,
            other => panic!("expected a treatment, got {other:?}"),
        })
        .collect()
}

#[test]
fn every_treatment_type_is_read_with_its_amount() {
    use crate::treatment::TreatmentKind as K;
    let t = "2026-03-01T08:00:00+01:00";
    let read = treatments(json!({"readings": [
        {"type": "insulin", "delivery": "bolus", "units": 4.5, "measured_at": t, "id": "b-1"},
        {"type": "insulin", "delivery": "basal", "units": 0.4, "duration_minutes": 30, "measured_at": t},
        {"type": "carbohydrates", "grams": 45, "note": "lunch", "measured_at": t},
        {"type": "exercise", "duration_minutes": 40, "measured_at": t},
        {"type": "note", "note": "feeling shaky", "measured_at": t},
        {"type": "sensor_start", "measured_at": t},
        {"type": "sensor_change", "measured_at": t},
        {"type": "calibration", "value": 6.1, "unit": "mmol/L", "measured_at": t},
    ]}));
    let seen: Vec<(K, Option<f64>, Option<u16>)> = read
        .iter()
        .map(|t| {
            (
                t.event.kind(),
                t.event.amount(),
                t.event.duration().map(|d| d.get()),
            )
        })
        .collect();
    assert_eq!(
        seen[..7],
        [
            (K::BolusInsulin, Some(4.5), None),
            (K::BasalInsulin, Some(0.4), Some(30)),
            (K::Carbohydrates, Some(45.0), None),
            (K::Exercise, None, Some(40)),
            (K::Note, None, None),
            (K::SensorStart, None, None),
            (K::SensorChange, None, None),
        ]
    );
    assert_eq!(seen[7].0, K::Calibration);
    let calibration = seen[7].1.expect("calibration value");
    assert!((calibration - 6.1 * 18.01559).abs() < 1e-9, "{calibration}");
    assert_eq!(read[0].device_reading_id.as_deref(), Some("b-1"));
    assert_eq!(read[0].utc_offset_minutes, 60);
    assert_eq!(read[2].note.as_deref(), Some("lunch"));
    assert_eq!(read[4].note.as_deref(), Some("feeling shaky"));
}

#[test]
fn every_treatment_rejection_reason() {
    let t = "2026-03-01T08:00:00Z";
    let cases: Vec<(Value, DeviceKind, RejectionReason)> = vec![
        (
            json!({"type": "insulin", "units": 2, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "insulin", "delivery": "bolus", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "insulin", "delivery": "puff", "units": 2, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "insulin", "delivery": "bolus", "units": "2", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "insulin", "delivery": "bolus", "units": 0, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "insulin", "delivery": "bolus", "units": 250, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "insulin", "delivery": "basal", "units": 1, "duration_minutes": 0, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "insulin", "delivery": "basal", "units": 1, "duration_minutes": 2.5, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "carbohydrates", "measured_at": t}),
            DeviceKind::Meter,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "carbohydrates", "grams": -10, "measured_at": t}),
            DeviceKind::Meter,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "carbohydrates", "grams": 900, "measured_at": t}),
            DeviceKind::Meter,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "exercise", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "exercise", "duration_minutes": 5000, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "note", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "note", "note": 7, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "note", "note": "x".repeat(1001), "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "calibration", "value": 100, "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "calibration", "value": 100, "unit": "mg", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::UnknownUnit,
        ),
        (
            json!({"type": "calibration", "value": "LO", "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::InvalidField,
        ),
        (
            json!({"type": "calibration", "value": 2000, "unit": "mg/dL", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::OutOfRange,
        ),
        (
            json!({"type": "sensor_start"}),
            DeviceKind::Cgm,
            RejectionReason::MissingField,
        ),
        (
            json!({"type": "sensor_start", "measured_at": "2026-03-01 08:00"}),
            DeviceKind::Cgm,
            RejectionReason::InvalidTimestamp,
        ),
        (
            json!({"type": "carbohydrates", "grams": 20, "measured_at": t}),
            DeviceKind::Bp,
            RejectionReason::WrongDeviceKind,
        ),
        (
            json!({"type": "medication", "measured_at": t}),
            DeviceKind::Cgm,
            RejectionReason::UnknownType,
        ),
    ];
    for (payload, kind, reason) in cases {
        assert_eq!(only_rejection(payload.clone(), kind), reason, "{payload}");
    }
}

#[test]
fn message_level_refusals() {
    let limits = DecodeLimits {
        max_message_bytes: 200,
        max_readings_per_message: 2,
        ..DecodeLimits::default()
    };
    let reason = |payload: &[u8]| {
        parse_message(payload, &limits)
            .map(|_| ())
            .map_err(|r| r.rejection.reason)
    };
    assert_eq!(reason(b"{not json"), Err(RejectionReason::MalformedJson));
    assert_eq!(reason(b"[1,2]"), Err(RejectionReason::MalformedJson));
    assert_eq!(
        reason(b"{\"hello\": 1}"),
        Err(RejectionReason::MalformedJson)
    );
    assert_eq!(
        reason(b"{\"readings\": 3}"),
        Err(RejectionReason::MalformedJson)
    );
    assert_eq!(
        reason(b"{\"readings\": []}"),
        Err(RejectionReason::EmptyBatch)
    );
    assert_eq!(reason(&[b' '; 201]), Err(RejectionReason::MessageTooLarge));
    let three = br#"{"readings": [{}, {}, {}]}"#;
    let refused = parse_message(three, &limits).expect_err("three readings exceed the limit");
    assert_eq!(refused.rejection.reason, RejectionReason::TooManyReadings);
    assert_eq!(refused.rejection.readings_covered, 3);
}

#[test]
fn every_reason_has_a_distinct_code() {
    let mut codes: Vec<_> = RejectionReason::ALL.iter().map(|r| r.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), RejectionReason::ALL.len());
}

proptest! {
    /// Any byte string decodes to readings or reasoned rejections, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = DecodeLimits::default();
        if let Ok(message) = parse_message(&bytes, &limits) {
            let (accepted, rejected) = validate_readings(&message, DeviceKind::Cgm, now(), &limits);
            prop_assert_eq!(accepted.len() + rejected.len(), message.readings.len());
        }
    }

    /// A glucose value is accepted exactly when it is in (0, 1000] mg/dL after conversion.
    #[test]
    fn glucose_plausibility_matches_the_range(value in -100.0f64..1200.0, mmol in any::<bool>()) {
        let unit = if mmol { "mmol/L" } else { "mg/dL" };
        let value = if mmol { value / 18.0 } else { value };
        let payload = json!({"type": "glucose", "value": value, "unit": unit, "measured_at": "2026-03-01T08:00:00Z"});
        let (accepted, rejected) = decode(&payload, DeviceKind::Meter);
        let mg_dl = if mmol { value * 18.01559 } else { value };
        let plausible = mg_dl > 0.0 && mg_dl <= 1000.0;
        prop_assert_eq!(accepted.len() == 1, plausible);
        if !plausible {
            prop_assert_eq!(rejected[0].reason, RejectionReason::OutOfRange);
        }
    }

    /// Blood pressure is accepted exactly when every value is in range and diastolic < systolic.
    #[test]
    fn blood_pressure_plausibility(sys in 0u16..400, dia in 0u16..250, pulse in 0u16..400) {
        let payload = json!({"type": "blood_pressure", "systolic": sys, "diastolic": dia, "pulse": pulse, "measured_at": "2026-03-01T08:00:00Z"});
        let (accepted, _) = decode(&payload, DeviceKind::Bp);
        let plausible = (50..=300).contains(&sys) && (20..=200).contains(&dia) && dia < sys && (20..=300).contains(&pulse);
        prop_assert_eq!(accepted.len() == 1, plausible);
    }
}

/// The field names the code under test reads.
const WIRE_FIELDS: &[&str] = &[
    "type",
    "value",
    "unit",
    "measured_at",
    "readings",
    "message_id",
    "id",
    "source",
    "flag",
    "systolic",
    "diastolic",
    "pulse",
    "units",
    "delivery",
    "grams",
    "duration_minutes",
    "note",
];

fn any_json() -> impl Strategy<Value = Value> {
    fuzzing::any_json(WIRE_FIELDS)
}

fn field_name() -> impl Strategy<Value = String> {
    fuzzing::field_name(WIRE_FIELDS)
}

/// Decodes and validates like the ingest does, checking that every refusal is reasoned: a
/// stable code and a sentence a person can act on.
fn decode_checked(bytes: &[u8], kind: DeviceKind) -> Result<(), TestCaseError> {
    decode_checked_within(bytes, kind, &DecodeLimits::default())
}

fn decode_checked_within(
    bytes: &[u8],
    kind: DeviceKind,
    limits: &DecodeLimits,
) -> Result<(), TestCaseError> {
    match parse_message(bytes, limits) {
        Err(refused) => reasoned(&refused.rejection)?,
        Ok(message) => {
            let (accepted, rejected) = validate_readings(&message, kind, now(), limits);
            prop_assert_eq!(accepted.len() + rejected.len(), message.readings.len());
            for rejection in &rejected {
                reasoned(rejection)?;
            }
        }
    }
    Ok(())
}

/// A refusal a device maker can act on: one of the documented codes and a sentence.
fn reasoned(rejection: &Rejection) -> Result<(), TestCaseError> {
    let code = rejection.reason.code();
    prop_assert!(
        RejectionReason::ALL.iter().any(|r| r.code() == code)
            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{rejection:?}"
    );
    prop_assert!(!rejection.detail.trim().is_empty(), "{rejection:?}");
    Ok(())
}

/// Numbers at and past the edges of what JSON, `f64` and the plausible ranges hold, written
/// as JSON text so that values `serde_json::Value` cannot build (1e400, -0) are sent too.
fn edge_number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1e308",
            "1e309",
            "-1e400",
            "1e-400",
            "5e-324",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "999999999999999999999999999999",
            "0.000000000000000000001",
            "104.0000000000001",
            "1000",
            "1000.0000001",
            "55.5",
            "300",
            "301",
            "19",
            "20",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        (-1000i32..2000, 0u32..1000).prop_map(|(i, f)| format!("{i}.{f:03}")),
    ]
}

/// Timestamps near RFC 3339: out-of-range fields, odd offsets, leap seconds, long fractions,
/// other separators, and the edges of the accepted age and skew.
fn odd_timestamp() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(2026i64),
            Just(2025),
            -1i64..10_000,
            Just(262_144),
            Just(1_000_000)
        ],
        0u32..14,
        0u32..33,
        0u32..26,
        0u32..62,
        0u32..62,
        prop::sample::select(vec!["", ".5", ".123456789", ".1234567890123456789", ","]),
        prop::sample::select(vec![
            "Z", "z", "+00:00", "-00:00", "+14:00", "-12:00", "+25:00", "+01", "+0100", "", " UTC",
            "+01:60",
        ]),
        prop::sample::select(vec!["T", "t", " ", "_"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, offset, sep)| {
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{offset}")
        })
}

/// A glucose or blood-pressure reading written as JSON text, each field either valid, an edge
/// number, an odd timestamp, text of any kind, or absent.
fn near_valid_reading() -> impl Strategy<Value = String> {
    let number = || {
        prop_oneof![
            3 => edge_number(),
            1 => nasty_text().prop_map(|t| Value::String(t).to_string()),
            1 => any_json().prop_map(|v| v.to_string()),
        ]
    };
    let time = prop_oneof![
        1 => Just("\"2026-03-01T08:00:00Z\"".to_owned()),
        3 => odd_timestamp().prop_map(|t| Value::String(t).to_string()),
        1 => any_json().prop_map(|v| v.to_string()),
    ];
    let text = |valid: &'static [&'static str]| {
        prop_oneof![
            3 => prop::sample::select(valid).prop_map(|t| format!("\"{t}\"")),
            1 => nasty_text().prop_map(|t| Value::String(t).to_string()),
            1 => any_json().prop_map(|v| v.to_string()),
        ]
    };
    let fields = (
        any::<bool>(),
        text(&["glucose", "blood_pressure"]),
        number(),
        text(&["mg/dL", "mmol/L"]),
        number(),
        number(),
        time,
        text(&["cgm", "meter"]),
        // One chance in four that a field goes missing: most readings stay whole and
        // reach the checks of their values.
        proptest::collection::vec(0u8..4, 6),
    );
    fields.prop_map(
        |(pressure, kind, value, unit, diastolic, pulse, measured_at, source, keep)| {
            let mut parts = vec![
                format!("\"type\":{kind}"),
                format!("\"measured_at\":{measured_at}"),
            ];
            if pressure {
                parts.push(format!("\"systolic\":{value}"));
                parts.push(format!("\"diastolic\":{diastolic}"));
                parts.push(format!("\"pulse\":{pulse}"));
            } else {
                parts.push(format!("\"value\":{value}"));
                parts.push(format!("\"unit\":{unit}"));
                parts.push(format!("\"source\":{source}"));
            }
            let kept: Vec<_> = parts
                .into_iter()
                .zip(keep)
                .filter(|(_, keep)| *keep != 0)
                .map(|(part, _)| part)
                .collect();
            format!("{{{}}}", kept.join(","))
        },
    )
}

proptest! {
    // Bounded here (proptest's default case count); for a long run:
    // `PROPTEST_CASES=200000 cargo test -p chronicle-domain --release fuzz_`.

    /// Any JSON value, for any kind of device: decoded or refused with a reason, never a panic.
    #[test]
    fn fuzz_arbitrary_json_is_decoded_or_refused_with_a_reason(
        payload in any_json(),
        kind in prop::sample::select(vec![DeviceKind::Cgm, DeviceKind::Meter, DeviceKind::Bp]),
    ) {
        decode_checked(payload.to_string().as_bytes(), kind)?;
        decode_checked(json!({ "readings": [payload] }).to_string().as_bytes(), kind)?;
    }

    /// A valid reading with one field replaced by anything: refused with a reason or still
    /// valid, never a panic.
    #[test]
    fn fuzz_a_valid_reading_with_one_field_mutated(
        field in field_name(),
        value in any_json(),
        pressure in any::<bool>(),
    ) {
        let mut reading = if pressure {
            json!({"type": "blood_pressure", "systolic": 128, "diastolic": 84, "pulse": 70,
                   "measured_at": "2026-03-01T08:00:00Z"})
        } else {
            json!({"type": "glucose", "value": 104, "unit": "mg/dL", "source": "meter",
                   "measured_at": "2026-03-01T08:00:00+01:00", "id": "r-1"})
        };
        reading[field.as_str()] = value;
        let kind = if pressure { DeviceKind::Bp } else { DeviceKind::Meter };
        decode_checked(reading.to_string().as_bytes(), kind)?;
        decode_checked(json!({ "message_id": "m", "readings": [reading.clone(), reading] }).to_string().as_bytes(), kind)?;
    }

    /// Arbitrary bytes in a batch's place, truncated JSON, and deep nesting.
    #[test]
    fn fuzz_broken_and_deep_payloads(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        cut in 0usize..200,
        depth in 0usize..2000,
    ) {
        decode_checked(&bytes, DeviceKind::Cgm)?;
        let valid = json!({"type": "glucose", "value": 104, "unit": "mg/dL",
                           "measured_at": "2026-03-01T08:00:00Z"}).to_string();
        decode_checked(&valid.as_bytes()[..cut.min(valid.len())], DeviceKind::Cgm)?;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        decode_checked(deep.as_bytes(), DeviceKind::Cgm)?;
    }

    /// Readings of the documented shape with fields at and past their edges (numbers JSON
    /// cannot carry, odd timestamps, wrong types, unicode, missing fields), alone and in
    /// batches with any kind of message id, for every kind of device.
    #[test]
    fn fuzz_near_valid_readings_and_batches(
        readings in proptest::collection::vec(near_valid_reading(), 1..12),
        message_id in prop_oneof![
            Just("null".to_owned()),
            ".{0,80}".prop_map(|t| Value::String(t).to_string()),
            any_json().prop_map(|v| v.to_string()),
        ],
        kind in prop::sample::select(vec![DeviceKind::Cgm, DeviceKind::Meter, DeviceKind::Bp]),
    ) {
        decode_checked(readings[0].as_bytes(), kind)?;
        let batch = format!("{{\"message_id\":{message_id},\"readings\":[{}]}}", readings.join(","));
        decode_checked(batch.as_bytes(), kind)?;
    }

    /// Batches around the reading-count and byte limits, with long text in a field: the limit
    /// that is crossed is the one named, and nothing under the limits is refused for its size.
    #[test]
    fn fuzz_batches_at_the_limits(
        reading in near_valid_reading(),
        count in 0usize..48,
        max_readings in 1usize..40,
        max_bytes in prop_oneof![0usize..64, 64usize..8192, Just(usize::MAX)],
        long in prop_oneof![Just(0usize), 0usize..300_000],
    ) {
        let limits = DecodeLimits {
            max_message_bytes: max_bytes,
            max_readings_per_message: max_readings,
            ..DecodeLimits::default()
        };
        let id = Value::String("é".repeat(long)).to_string();
        let batch = format!(
            "{{\"message_id\":{id},\"readings\":[{}]}}",
            vec![reading; count].join(",")
        );
        decode_checked_within(batch.as_bytes(), DeviceKind::Meter, &limits)?;
        let refusal = parse_message(batch.as_bytes(), &limits).err().map(|r| r.rejection.reason);
        if batch.len() > max_bytes {
            prop_assert_eq!(refusal, Some(RejectionReason::MessageTooLarge));
        } else if serde_json::from_str::<Value>(&batch).is_err() {
            // A number past `f64` (1e309) is refused with the message, as JSON it cannot read.
            prop_assert_eq!(refusal, Some(RejectionReason::MalformedJson));
        } else if long > MAX_ID_CHARS {
            prop_assert_eq!(refusal, Some(RejectionReason::MalformedJson));
        } else if count == 0 {
            prop_assert_eq!(refusal, Some(RejectionReason::EmptyBatch));
        } else if count > max_readings {
            prop_assert_eq!(refusal, Some(RejectionReason::TooManyReadings));
        } else {
            prop_assert_eq!(refusal, None);
        }
    }
}
