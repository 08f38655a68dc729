//! Imports of vendor exports through the API, against files written in each vendor's format
//! (`tests/fixtures/imports/`): a Dexcom Clarity export in mg/dL with its header rows, Low and
//! High, a calibration, treatments, bad rows, a repeated reading and the autumn and spring
//! clock changes; a LibreView export in mmol/L with a day-first date, a finger stick and bad
//! rows, uploaded by the patient's guardian; a Nightscout JSON export. Each is previewed, then
//! imported, then imported again (nothing stored twice). What was stored is read back through
//! the readings API and compared with an independent reading of the same file by cgm-format
//! (a parser of these exports from PyPI), with the rows the test knows to be bad taken out of
//! the file it reads (it refuses a whole file on one bad row).

use chronicle_domain::sharing::Role;
use chronicle_domain::zone::Tz;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::readers::run_reader;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

const PASSWORD: &str = "a long import test password";
const CLARITY: &str = include_str!("../fixtures/imports/clarity_mg_dl.csv");
const LIBREVIEW: &str = include_str!("../fixtures/imports/libreview_mmol_l.csv");

/// Posts `body` to the patient's import route `route` (`imports` or `imports/preview`).
async fn upload(
    server: &TestApp,
    token: &str,
    patient: Uuid,
    route: &str,
    query: &str,
    body: &str,
) -> (StatusCode, Value) {
    let response = server
        .http()
        .post(server.http_url(&format!("/v1/patients/{patient}/{route}?{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body.to_owned())
        .send()
        .await
        .expect("upload");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ok(result: (StatusCode, Value)) -> Value {
    let (status, body) = result;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Every item of a readings route, all pages.
async fn all_items(api: &ApiClient, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let page = api.get_ok(token, &page_path).await;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// The refused rows of a preview or import as line → reason.
fn refused_lines(body: &Value) -> BTreeMap<u64, String> {
    body["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

/// The file without the given lines (counted from 1).
fn without_lines(text: &str, lines: &[usize]) -> String {
    text.lines()
        .enumerate()
        .filter(|(i, _)| !lines.contains(&(i + 1)))
        .map(|(_, l)| format!("{l}\n"))
        .collect()
}

/// A stored instant as local wall-clock time in `zone`, as the export writes it.
fn local(at: &Value, zone: Tz) -> String {
    let at: DateTime<Utc> = at.as_str().expect("time").parse().expect("RFC 3339");
    at.with_timezone(&zone)
        .naive_local()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// A comparable record: local time, what it is, and its amount (mg/dL for glucose).
type Record = (String, String, String);

fn amount(v: f64) -> String {
    format!("{v:.1}")
}

/// What Chronicle stored, as records comparable with cgm-format's.
async fn stored_records(api: &ApiClient, token: &str, patient: Uuid, zone: Tz) -> Vec<Record> {
    let mut records = Vec::new();
    let glucose = all_items(
        api,
        token,
        &format!("/v1/patients/{patient}/glucose?from=2000-01-01T00:00:00Z&limit=1000"),
    )
    .await;
    for g in glucose {
        let what = match (g["source"].as_str(), g["flag"].as_str()) {
            (_, Some(flag)) => format!("glucose_{flag}"),
            (Some("meter"), None) => "finger_stick".into(),
            _ => "glucose".into(),
        };
        let value = if g["flag"].is_null() {
            amount(g["value"].as_f64().expect("value"))
        } else {
            String::new()
        };
        records.push((local(&g["measured_at"], zone), what, value));
    }
    let treatments = all_items(
        api,
        token,
        &format!("/v1/patients/{patient}/treatments?from=2000-01-01T00:00:00Z&limit=1000"),
    )
    .await;
    for t in treatments {
        let kind = t["kind"].as_str().expect("kind").to_owned();
        let value = match kind.as_str() {
            "exercise" => t["duration_minutes"].to_string(),
            "note" => t["note"].as_str().unwrap_or("").to_owned(),
            _ => amount(t["amount"].as_f64().expect("amount")),
        };
        records.push((local(&t["measured_at"], zone), kind, value));
    }
    records.sort();
    records
}

/// cgm-format's reading of `export`, as comparable records.
fn independent_records(export: &str, finger_sticks_as_calibrations: bool) -> Vec<Record> {
    let read: Value = serde_json::from_str(&run_reader("vendor_export_read.py", export.as_bytes()))
        .expect("reader JSON");
    let mut records = Vec::new();
    for r in read.as_array().expect("records") {
        let at = r["local"].as_str().expect("local").to_owned();
        let number = |name: &str| r[name].as_f64().map(amount).unwrap_or_default();
        let record = match r["event"].as_str().expect("event") {
            "EGV_READ" if r["out_of_range"] == json!(true) => {
                let high = r["glucose"].as_f64().unwrap_or(0.0) > 200.0;
                (
                    at,
                    if high { "glucose_hi" } else { "glucose_lo" }.into(),
                    String::new(),
                )
            }
            "EGV_READ" => (at, "glucose".into(), number("glucose")),
            "CALIBRAT" if finger_sticks_as_calibrations => {
                (at, "calibration".into(), number("glucose"))
            }
            "CALIBRAT" => (at, "finger_stick".into(), number("glucose")),
            "CARBS_IN" => (at, "carbohydrates".into(), number("carbs")),
            "INS_FAST" => (at, "bolus_insulin".into(), number("insulin_fast")),
            "INS_SLOW" => (at, "basal_insulin".into(), number("insulin_slow")),
            // Exercise by intensity: XRCS_LTE, XRCS_MED, XRCS_HVY.
            e if e.starts_with("XRCS") => {
                let seconds = r["exercise_seconds"].as_i64().expect("exercise");
                (at, "exercise".into(), (seconds / 60).to_string())
            }
            other => panic!("cgm-format read an event Chronicle's test does not expect: {other}"),
        };
        records.push(record);
    }
    records.sort();
    records
}

/// Glucose values compared to 0.1 mg/dL: mmol/L converts with 18.016 here and 18.018 in
/// cgm-format, so the test allows the difference of the two factors.
fn assert_same_records(chronicle: &[Record], independent: &[Record]) {
    assert_eq!(
        chronicle.len(),
        independent.len(),
        "Chronicle stored {chronicle:#?}\ncgm-format read {independent:#?}"
    );
    for (c, i) in chronicle.iter().zip(independent) {
        assert_eq!((&c.0, &c.1), (&i.0, &i.1), "{c:?} vs {i:?}");
        match (c.2.parse::<f64>(), i.2.parse::<f64>()) {
            (Ok(a), Ok(b)) => assert!((a - b).abs() <= 0.05 + b.abs() * 0.0002, "{c:?} vs {i:?}"),
            _ => assert_eq!(c.2, i.2, "{c:?} vs {i:?}"),
        }
    }
}

async fn patient_with_user(store: &Store, email: &str, zone: &str) -> Uuid {
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Amy".into(),
            time_zone: zone.into(),
        })
        .await
        .expect("patient")
        .id;
    create_user(store, email, Role::Patient, Some(patient), PASSWORD).await;
    patient
}

async fn recorded_refusals(store: &Store, patient: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rejected_readings WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(store.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn clarity_export_previewed_imported_once_and_read_as_cgm_format_reads_it() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let zone = Tz::Europe__Berlin;
    let patient = patient_with_user(&store, "amy@example.org", "Europe/Berlin").await;
    let api = ApiClient::new(&server);
    let amy = api.login("amy@example.org", PASSWORD).await;
    let query = "format=dexcom_clarity";

    // The bad rows, by line (the header is line 1, Index n is line n + 1).
    let expected_refusals: BTreeMap<u64, String> = [
        (20, "invalid_value"),          // "abc"
        (21, "invalid_timestamp"),      // 26/10/2025 12:10
        (22, "out_of_range"),           // 1200 mg/dL, refused by the ingest
        (24, "not_imported"),           // an Alert event
        (26, "nonexistent_local_time"), // 02:30 on the spring clock change
    ]
    .into_iter()
    .map(|(l, r)| (l, r.to_owned()))
    .collect();

    let preview = ok(upload(&server, &amy, patient, "imports/preview", query, CLARITY).await).await;
    assert_eq!(preview["format"], "dexcom_clarity");
    assert_eq!(preview["time_zone"], "Europe/Berlin");
    assert_eq!(preview["metadata_rows"], 6, "{preview}");
    assert_eq!(preview["records"], 21, "{preview}");
    assert_eq!(refused_lines(&preview), expected_refusals, "{preview}");
    // Sensor readings: 01:50, 01:55, the repeated hour's 02:00, 02:30, 02:55, 02:00, 02:30
    // (Low), 03:00, 12:00 High and its repeat at line 25.
    assert_eq!(preview["glucose_readings"], 10, "{preview}");
    // Calibration, bolus, carbohydrates, illness note, basal, exercise.
    assert_eq!(preview["treatments"], 6, "{preview}");
    assert_eq!(preview["duplicates"], 1, "{preview}");
    assert_eq!(preview["new_records"], 15, "{preview}");
    assert_eq!(preview["first_at"], "2025-10-25T23:50:00Z");
    assert_eq!(preview["last_at"], "2025-10-26T20:00:00Z");
    assert!(
        api.get_ok(&amy, &format!("/v1/patients/{patient}/glucose"))
            .await["items"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "a preview stores nothing"
    );

    let imported = ok(upload(&server, &amy, patient, "imports", query, CLARITY).await).await;
    assert_eq!(imported["stored"], 15, "{imported}");
    assert_eq!(imported["duplicates"], 1, "{imported}");
    assert_eq!(refused_lines(&imported), expected_refusals, "{imported}");
    assert_eq!(imported["devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        recorded_refusals(&store, patient).await,
        5,
        "each refused row is recorded"
    );

    // The autumn clock change: the two 02:00 readings are an hour apart.
    let glucose = all_items(
        &api,
        &amy,
        &format!(
            "/v1/patients/{patient}/glucose?from=2025-10-25T23:59:00Z&to=2025-10-26T01:01:00Z"
        ),
    )
    .await;
    let times: Vec<(&str, f64)> = glucose
        .iter()
        .map(|g| {
            (
                g["measured_at"].as_str().unwrap_or(""),
                g["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            ("2025-10-26T00:00:00Z", 115.0),
            ("2025-10-26T00:30:00Z", 110.0),
            ("2025-10-26T00:55:00Z", 105.0),
            ("2025-10-26T01:00:00Z", 100.0),
        ]
    );

    // cgm-format reads the file without the rows it cannot read (lines 20, 21) and without
    // the repeat (line 25); Chronicle does not store 1200 mg/dL (above 1000) nor a time
    // the clocks skipped. cgm-format keeps no notes and no Clarity calibrations: those two
    // are checked against the file directly.
    let independent: Vec<Record> =
        independent_records(&without_lines(CLARITY, &[20, 21, 25]), true)
            .into_iter()
            .filter(|(at, what, value)| {
                !(what == "glucose" && value == "1200.0") && at != "2025-03-30T02:30:00"
            })
            .collect();
    let stored = stored_records(&api, &amy, patient, zone).await;
    let (direct, compared): (Vec<Record>, Vec<Record>) = stored
        .into_iter()
        .partition(|(_, what, _)| what == "note" || what == "calibration");
    assert_same_records(&compared, &independent);
    assert_eq!(
        direct,
        [
            (
                "2025-10-26T03:05:00".into(),
                "calibration".into(),
                "52.0".into()
            ),
            (
                "2025-10-26T12:20:00".into(),
                "note".into(),
                "Illness".into()
            ),
        ]
    );

    // Again: everything is a duplicate, in the preview and in the import.
    let preview = ok(upload(&server, &amy, patient, "imports/preview", query, CLARITY).await).await;
    assert_eq!(preview["duplicates"], 16, "{preview}");
    assert_eq!(preview["new_records"], 0, "{preview}");
    let again = ok(upload(&server, &amy, patient, "imports", query, CLARITY).await).await;
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(again["duplicates"], 16, "{again}");
    assert_eq!(
        again["devices"], imported["devices"],
        "the same import device"
    );

    // The imported treatments in the FHIR export, valid by the independent models: insulin as
    // MedicationAdministrations, carbohydrates, exercise and the calibration as Observations.
    let fhir = api
        .get_ok(&amy, &format!("/v1/patients/{patient}/export/fhir"))
        .await;
    let resources: Vec<&Value> = fhir["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert_eq!(
        run_reader(
            "fhir_validate.py",
            &serde_json::to_vec(&fhir).expect("bytes")
        )
        .trim(),
        resources.len().to_string()
    );
    let doses: Vec<(f64, &str)> = resources
        .iter()
        .filter(|r| r["resourceType"] == "MedicationAdministration")
        .map(|r| {
            (
                r["dosage"]["dose"]["value"].as_f64().unwrap_or(0.0),
                r["dosage"]["dose"]["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(doses, [(4.5, "[iU]"), (18.0, "[iU]")]);
    let coded = |code: &str| {
        resources
            .iter()
            .filter(|r| r["code"]["coding"][0]["code"] == code)
            .map(|r| {
                (
                    r["valueQuantity"]["value"].as_f64().unwrap_or(0.0),
                    r["valueQuantity"]["code"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(coded("9059-7"), [(45.0, "g".to_owned())]);
    assert_eq!(coded("55411-3"), [(45.0, "min".to_owned())]);
    assert_eq!(coded("41653-7"), [(52.0, "mg/dL".to_owned())]);
}

#[tokio::test]
async fn libreview_mmol_export_by_a_guardian_in_the_patients_zone() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let zone = Tz::Europe__Berlin;
    let patient = patient_with_user(&store, "amy@example.org", "Europe/Berlin").await;
    let guardian = create_user(&store, "ben@example.org", Role::Caregiver, None, PASSWORD).await;
    store
        .add_guardian(patient, guardian)
        .await
        .expect("guardian");
    let api = ApiClient::new(&server);
    let ben = api.login("ben@example.org", PASSWORD).await;
    let query = "format=libreview";
    let expected_refusals: BTreeMap<u64, String> = [
        (9, "not_imported"),       // a ketone reading
        (11, "missing_value"),     // historic glucose empty
        (12, "out_of_range"),      // 60 mmol/L, refused by the ingest
        (13, "invalid_timestamp"), // 31 November
    ]
    .into_iter()
    .map(|(l, r)| (l, r.to_owned()))
    .collect();

    let preview =
        ok(upload(&server, &ben, patient, "imports/preview", query, LIBREVIEW).await).await;
    assert_eq!(refused_lines(&preview), expected_refusals, "{preview}");
    assert_eq!(preview["glucose_readings"], 5, "{preview}");
    assert_eq!(preview["treatments"], 4, "{preview}");
    // 08:00 on 10 November in Berlin (CET) is 07:00 UTC.
    assert_eq!(preview["first_at"], "2025-11-10T07:00:00Z");

    let imported = ok(upload(&server, &ben, patient, "imports", query, LIBREVIEW).await).await;
    assert_eq!(imported["stored"], 9, "{imported}");
    assert_eq!(refused_lines(&imported), expected_refusals, "{imported}");
    // The finger stick went to a meter import device beside the sensor's.
    assert_eq!(imported["devices"].as_array().map(Vec::len), Some(2));

    // Units: the values as exported in mmol/L.
    let mmol = all_items(
        &api,
        &ben,
        &format!("/v1/patients/{patient}/glucose?from=2025-11-10T06:59:00Z&to=2025-11-10T07:16:00Z&unit=mmol/L"),
    )
    .await;
    let values: Vec<f64> = mmol.iter().filter_map(|g| g["value"].as_f64()).collect();
    assert_eq!(values.len(), 2, "{mmol:?}");
    assert!(
        (values[0] - 6.2).abs() < 0.001 && (values[1] - 6.8).abs() < 0.001,
        "{values:?}"
    );

    let independent: Vec<Record> = independent_records(&without_lines(LIBREVIEW, &[11, 13]), false)
        .into_iter()
        .filter(|(_, what, value)| {
            !(what == "glucose" && value.parse::<f64>().is_ok_and(|v| v > 1000.0))
        })
        .collect();
    let stored: Vec<Record> = stored_records(&api, &ben, patient, zone)
        .await
        .into_iter()
        .filter(|(_, what, _)| what != "note")
        .collect();
    assert_same_records(&stored, &independent);

    let again = ok(upload(&server, &ben, patient, "imports", query, LIBREVIEW).await).await;
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(again["duplicates"], 9, "{again}");

    // A file whose days are all 12 or less leaves the date order open: refused whole, unless
    // the uploader states it. The zone stated wins over the patient's.
    let open = "Glucose Data,Generated on,02-03-2026 09:40 UTC,Generated by,Amy Example\n\
        Device,Serial Number,Device Timestamp,Record Type,Historic Glucose mg/dL,Scan Glucose mg/dL\n\
        FreeStyle Libre 3,ABC,02-03-2026 08:00,0,101,\n";
    let (status, problem) = upload(&server, &ben, patient, "imports/preview", query, open).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("date_order"),
        "{problem}"
    );
    let stated = ok(upload(
        &server,
        &ben,
        patient,
        "imports/preview",
        "format=libreview&date_order=mdy&time_zone=America/New_York",
        open,
    )
    .await)
    .await;
    // 2 March 2026 08:00 in New York (EST) is 13:00 UTC.
    assert_eq!(stated["first_at"], "2026-02-03T13:00:00Z", "{stated}");
    assert_eq!(stated["other_sources_in_span"], 0, "{stated}");

    // A Nightscout export of the same days: the preview says the LibreView import already
    // holds glucose in its span (08:00 to 08:25 on 10 November: four readings, the strip's too).
    let overlapping = json!([
        {"type": "sgv", "sgv": 112, "date": 1_762_758_000_000_i64},
        {"type": "sgv", "sgv": 133, "date": 1_762_759_500_000_i64},
    ])
    .to_string();
    let preview = ok(upload(
        &server,
        &ben,
        patient,
        "imports/preview",
        "format=nightscout",
        &overlapping,
    )
    .await)
    .await;
    assert_eq!(preview["first_at"], "2025-11-10T07:00:00Z", "{preview}");
    assert_eq!(preview["last_at"], "2025-11-10T07:25:00Z", "{preview}");
    assert_eq!(preview["other_sources_in_span"], 4, "{preview}");
    assert_eq!(
        preview["duplicates"], 0,
        "other devices' readings are no duplicates"
    );
}

#[tokio::test]
async fn nightscout_export_entries_and_treatments() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let patient = patient_with_user(&store, "amy@example.org", "UTC").await;
    let api = ApiClient::new(&server);
    let amy = api.login("amy@example.org", PASSWORD).await;
    // 1 September 2025 08:00 UTC, in Nightscout's milliseconds.
    let t0: i64 = 1_756_713_600_000;
    let export = json!({
        "entries": [
            {"_id": "a1", "type": "sgv", "sgv": 142, "date": t0, "direction": "Flat"},
            {"_id": "a2", "type": "sgv", "sgv": 150, "date": t0 + 300_000},
            {"_id": "a3", "type": "sgv", "sgv": 5, "date": t0 + 600_000},
            {"_id": "a4", "type": "mbg", "mbg": 160, "date": t0 + 660_000},
            {"_id": "a2", "type": "sgv", "sgv": 150, "date": t0 + 300_000},
        ],
        "treatments": [
            {"_id": "t1", "eventType": "Meal Bolus", "insulin": 5, "carbs": 50,
             "created_at": "2025-09-01T08:30:00.000Z"},
        ],
    })
    .to_string();
    let query = "format=nightscout";
    let preview = ok(upload(&server, &amy, patient, "imports/preview", query, &export).await).await;
    assert_eq!(preview["glucose_readings"], 4, "{preview}");
    assert_eq!(preview["treatments"], 2, "{preview}");
    assert_eq!(preview["duplicates"], 1, "{preview}");
    let refused = preview["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 1, "{preview}");
    assert_eq!(refused[0]["entry"], "entries[2]", "the status code");
    assert_eq!(refused[0]["reason"], "unknown_type");

    let imported = ok(upload(&server, &amy, patient, "imports", query, &export).await).await;
    assert_eq!(imported["stored"], 5, "{imported}");
    assert_eq!(imported["duplicates"], 1, "{imported}");
    let glucose = all_items(
        &api,
        &amy,
        &format!("/v1/patients/{patient}/glucose?from=2025-09-01T00:00:00Z"),
    )
    .await;
    let got: Vec<(&str, f64, &str)> = glucose
        .iter()
        .map(|g| {
            (
                g["measured_at"].as_str().unwrap_or(""),
                g["value"].as_f64().unwrap_or(0.0),
                g["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2025-09-01T08:00:00Z", 142.0, "cgm"),
            ("2025-09-01T08:05:00Z", 150.0, "cgm"),
            ("2025-09-01T08:11:00Z", 160.0, "meter"),
        ]
    );
    let again = ok(upload(&server, &amy, patient, "imports", query, &export).await).await;
    assert_eq!(again["stored"], 0, "{again}");
}

/// Text the database cannot hold (the NUL character, valid in JSON and in a CSV) in an
/// export's ids and notes is refused entry by entry; the rest of the export is stored, and
/// nothing stops: the next import goes through.
#[tokio::test]
async fn text_with_a_nul_character_is_refused_entry_by_entry() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let patient = patient_with_user(&store, "nul@example.org", "UTC").await;
    let api = ApiClient::new(&server);
    let token = api.login("nul@example.org", PASSWORD).await;
    let t0: i64 = 1_756_713_600_000;
    let export = json!({
        "entries": [
            {"_id": "a\u{0}1", "type": "sgv", "sgv": 142, "date": t0},
            {"_id": "a2", "type": "sgv", "sgv": 150, "date": t0 + 300_000},
        ],
        "treatments": [
            {"_id": "t1", "eventType": "Note", "notes": "before\u{0}after",
             "created_at": "2025-09-01T08:30:00.000Z"},
        ],
    })
    .to_string();
    let query = "format=nightscout";
    let imported = ok(upload(&server, &token, patient, "imports", query, &export).await).await;
    assert_eq!(imported["stored"], 1, "{imported}");
    let refused: Vec<(&str, &str)> = imported["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|r| {
            (
                r["entry"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("entries[0]", "invalid_field"),
            ("treatments[0]", "invalid_field")
        ],
        "{imported}"
    );

    // A CSV export with NUL in a row: that row is refused, the others stored.
    let poisoned = CLARITY.replacen("abc", "a\u{0}c", 1);
    assert_ne!(poisoned, CLARITY);
    let clarity = ok(upload(
        &server,
        &token,
        patient,
        "imports",
        "format=dexcom_clarity",
        &poisoned,
    )
    .await)
    .await;
    assert!(
        clarity["stored"].as_u64().is_some_and(|n| n > 0),
        "{clarity}"
    );
}
