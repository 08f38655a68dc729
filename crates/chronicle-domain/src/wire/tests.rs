use super::*;
use proptest::prelude::*;
use serde_json::json;

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

/// Any JSON value, nested a few levels: what a broken or hostile device could send.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        nasty_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the protocol mixed with arbitrary ones, so generated objects reach the
/// validation of each field rather than stopping at "unknown shape".
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
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
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,12}",
    ]
}

/// Text that has broken parsers elsewhere: odd numbers, times, units and unicode.
fn nasty_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "NaN",
        "inf",
        "-0",
        "1e309",
        "0x10",
        "９０",
        "glucose",
        "blood_pressure",
        "mg/dL",
        "mmol/L",
        "mm[Hg]",
        "LO",
        "HI",
        "2026-03-01T08:00:00Z",
        "2026-02-30T08:00:00Z",
        "1900-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "2026-03-01T08:00:00-25:00",
        "2026-03-01T08:00:00.123456789123Z",
        "\u{0}",
        "\u{202e}evil",
        "😀",
        "cgm",
        "meter",
    ])
    .prop_map(str::to_owned)
}

/// Decodes and validates like the ingest does, checking that every refusal is reasoned: a
/// stable code and a sentence a person can act on.
fn decode_checked(bytes: &[u8], kind: DeviceKind) -> Result<(), TestCaseError> {
    let limits = DecodeLimits::default();
    match parse_message(bytes, &limits) {
        Err(refused) => {
            prop_assert!(!refused.rejection.detail.trim().is_empty(), "{refused:?}");
            prop_assert!(!refused.rejection.reason.code().is_empty());
        }
        Ok(message) => {
            let (accepted, rejected) = validate_readings(&message, kind, now(), &limits);
            prop_assert_eq!(accepted.len() + rejected.len(), message.readings.len());
            for rejection in &rejected {
                prop_assert!(!rejection.detail.trim().is_empty(), "{rejection:?}");
            }
        }
    }
    Ok(())
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
}
