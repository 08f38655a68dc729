//! Generators of hostile input for the fuzz tests (the wire decoder's here, the HTTP API's in
//! the tests crate): text that has broken parsers elsewhere, and arbitrary JSON whose object
//! keys are mostly the names the code under test reads, so generated objects reach the
//! validation of each field rather than stopping at "unknown shape".

use proptest::prelude::*;
use serde_json::{Value, json};

/// Text that has broken parsers elsewhere: odd numbers, times, units, ids, paths, injections
/// and unicode.
pub fn nasty_text() -> impl Strategy<Value = String> {
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
        "insulin",
        "carbohydrates",
        "exercise",
        "note",
        "sensor_start",
        "calibration",
        "bolus",
        "basal",
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
        " ",
        "0",
        "-1",
        "9999999999999999999999",
        "true",
        "null",
        "[]",
        "{}",
        "care",
        "view_readings",
        "care_team",
        "2026-02-30",
        "Europe/Berlin",
        "Mars/Base",
        "00000000-0000-0000-0000-000000000000",
        "../../etc/passwd",
        "%00",
        "\u{202e}",
        "'; DROP TABLE patients; --",
        "<script>",
    ])
    .prop_map(str::to_owned)
}

/// One of the `known` field names, or an arbitrary one.
pub fn field_name(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(known).prop_map(str::to_owned),
        "[a-z_]{0,12}",
    ]
}

/// Any JSON value, nested up to four deep, its objects keyed mostly by the `known` names.
pub fn any_json(known: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        nasty_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(known), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
