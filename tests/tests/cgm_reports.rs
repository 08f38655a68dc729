//! The clinic's other systems, read side: the printable AGP report (PDF) and the FHIR CGM
//! summary, for a patient with two weeks of CGM readings sent over MQTT. The report's text is
//! read back with an independent PDF reader (pypdf) and every figure compared with the
//! glucose trend API's JSON; the summary is validated with the independent FHIR models
//! (fhir.resources), held to each constraint of the CGM guide's profiles, and its values
//! compared with the trend API's. Both reads are in the patient's access log.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::readers::{pdf_text, run_reader};
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice, create_user};
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "a long report test password";
const IG: &str = "http://hl7.org/fhir/uv/cgm/StructureDefinition/";
const UCUM: &str = "http://unitsofmeasure.org";

/// Fifteen days of 5-minute CGM readings up to now: a daily swing from about 55 to 290 mg/dL,
/// with a two-hour silence each day (so CGM active is below 100 %).
fn readings(now: DateTime<Utc>) -> Vec<(DateTime<Utc>, f64)> {
    let start = now - Duration::days(15);
    (0..15 * 288)
        .filter(|k| k % 288 >= 24)
        .map(|k| {
            let phase = f64::from(k % 288) / 288.0 * std::f64::consts::TAU;
            let value = (170.0 + 115.0 * phase.sin() + f64::from(k % 7) * 3.0).round();
            (start + Duration::minutes(5 * i64::from(k)), value)
        })
        .collect()
}

/// The AGP report at `path` as `token` gets it, checked to be a PDF: the file, and its text as
/// pypdf reads it (runs of white space as one space).
async fn report(server: &TestApp, token: &str, path: &str) -> (Vec<u8>, String) {
    let response = server
        .http()
        .get(server.http_url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("report");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.expect("bytes");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let text = pdf_text(&pdf);
    (pdf.to_vec(), text)
}

fn one_decimal(v: &Value) -> String {
    format!(
        "{:.1}",
        v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
    )
}

/// The coding's code of a CodeableConcept.
fn code_of(concept: &Value) -> &str {
    concept["coding"][0]["code"].as_str().unwrap_or("")
}

/// Holds one Observation of the summary to the guide's profile `profile`: the profile
/// claimed, status, subject, category, code, and an effectivePeriod with start and end.
fn assert_summary_base(o: &Value, profile: &str, code: &str, patient: &str, period: (&str, &str)) {
    assert_eq!(o["resourceType"], "Observation", "{o}");
    assert_eq!(o["meta"]["profile"][0], format!("{IG}{profile}"), "{o}");
    assert_eq!(o["status"], "final", "{o}");
    assert_eq!(
        o["subject"]["reference"],
        format!("Patient/{patient}"),
        "{o}"
    );
    assert_eq!(o["code"]["coding"][0]["system"], "http://loinc.org", "{o}");
    assert_eq!(code_of(&o["code"]), code, "{o}");
    assert_eq!(o["effectivePeriod"]["start"], period.0, "{o}");
    assert_eq!(o["effectivePeriod"]["end"], period.1, "{o}");
}

/// A quantity as the guide's pattern fixes it (UCUM `code`, the guide's `unit`) and its value.
fn assert_quantity(q: &Value, code: &str, unit: &str, value: &Value) {
    assert_eq!(q["system"], UCUM, "{q}");
    assert_eq!(q["code"], code, "{q}");
    assert_eq!(q["unit"], unit, "{q}");
    assert_eq!(&q["value"], value, "{q}");
}

#[tokio::test]
async fn agp_report_and_fhir_summary_carry_the_trend_apis_figures() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Amy".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient")
        .id;
    create_user(
        &store,
        "amy@example.org",
        Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let org = store.create_organization("Clinic").await.expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes")
        .await
        .expect("team");
    let lee = create_user(
        &store,
        "lee@clinic.example",
        Role::Clinician,
        None,
        PASSWORD,
    )
    .await;
    store.add_team_member(team.id, lee).await.expect("member");
    store
        .create_grant(&NewGrant {
            patient_id: patient,
            grantee: Grantee::CareTeam(team.id),
            categories: [DataCategory::Glucose].into(),
            access: [Access::ViewTrends].into(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
    let api = ApiClient::new(&server);
    let amy = api.login("amy@example.org", PASSWORD).await;
    let clinician = api.login("lee@clinic.example", PASSWORD).await;

    let now = Utc::now()
        .duration_trunc(Duration::minutes(5))
        .expect("truncate");
    let (cgm_id, cgm_secret) = server
        .add_device(&patient.to_string(), "cgm")
        .await
        .expect("device");
    let mut cgm = TestDevice::connect(server.mqtt_port(), &cgm_id, Some(&cgm_secret))
        .await
        .expect("connect");
    cgm.send_glucose(&readings(now), "cgm").await;

    // Fourteen complete past days, so every read sees the same figures whenever it runs.
    let today = now.date_naive();
    let (from, to) = (today - Duration::days(14), today - Duration::days(1));
    let period = format!("from={from}&to={to}");
    let trend = api
        .get_ok(
            &amy,
            &format!("/v1/patients/{patient}/trends/glucose?{period}"),
        )
        .await;
    let m = &trend["metrics"];
    assert_eq!(m["calendar_days"], 14, "{m}");
    assert!(m["readings"].as_i64().unwrap_or(0) > 3000, "{m}");

    // The AGP report, read back by pypdf.
    let path = format!("/v1/patients/{patient}/reports/agp.pdf?{period}");
    let (pdf, text) = report(&server, &amy, &path).await;
    // The picture in docs/dashboards.md is rendered from this file.
    if let Ok(file) = std::env::var("CHRONICLE_TEST_AGP_PDF") {
        std::fs::write(file, &pdf).expect("write the report");
    }
    let expected = [
        "AMBULATORY GLUCOSE PROFILE (AGP) REPORT".to_owned(),
        format!("Period: {from} – {to} (14 days)"),
        format!(
            "% Time CGM is active: {}%",
            one_decimal(&m["cgm_active_percent"])
        ),
        format!(
            "Days of sensor wear: {} of 14 ({}%)",
            m["days_with_cgm"],
            one_decimal(&json!(
                m["days_with_cgm"].as_f64().unwrap_or(0.0) / 14.0 * 100.0
            ))
        ),
        format!("Readings: {}", m["readings"]),
        format!("Mean glucose: {} mg/dL", one_decimal(&m["mean"])),
        format!(
            "Glucose management indicator (GMI): {}%",
            one_decimal(&m["gmi_percent"])
        ),
        format!(
            "Glucose variability (CV): {}%",
            one_decimal(&m["cv_percent"])
        ),
        format!(
            "Very low (below 54 mg/dL): {}%",
            one_decimal(&m["time_very_low_percent"])
        ),
        format!(
            "Low (54–69 mg/dL): {}%",
            one_decimal(&m["time_low_percent"])
        ),
        format!(
            "In range (70–180 mg/dL): {}%",
            one_decimal(&m["time_in_range_percent"])
        ),
        format!(
            "High (181–250 mg/dL): {}%",
            one_decimal(&m["time_high_percent"])
        ),
        format!(
            "Very high (above 250 mg/dL): {}%",
            one_decimal(&m["time_very_high_percent"])
        ),
        format!(
            "Below 70: {}% Above 180: {}%",
            one_decimal(&m["time_below_70_percent"]),
            one_decimal(&m["time_above_180_percent"])
        ),
        "Time in range 70–180 mg/dL: greater than 70%".to_owned(),
        "DAILY GLUCOSE PROFILES".to_owned(),
    ];
    for line in &expected {
        assert!(
            text.contains(line.as_str()),
            "{line:?} not in the report: {text}"
        );
    }
    // Every day's time in range, as the trend's daily series has it, in order.
    let daily = trend["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 14);
    let mut rest = text.as_str();
    for day in daily {
        let label = format!("TIR {}%", one_decimal(&day["time_in_range_percent"]));
        let at = rest
            .find(&label)
            .unwrap_or_else(|| panic!("{label} of {} not in order: {text}", day["date"]));
        rest = &rest[at + label.len()..];
    }
    assert!(!text.contains("this grant shows trends only"), "{text}");

    // In mmol/L the glucose values follow the trend API's conversion; shares stay as they are.
    let mmol = api
        .get_ok(
            &amy,
            &format!("/v1/patients/{patient}/trends/glucose?{period}&unit=mmol/L"),
        )
        .await;
    let (_, mmol_text) = report(&server, &amy, &format!("{path}&unit=mmol/L")).await;
    for line in [
        format!(
            "Mean glucose: {} mmol/L",
            one_decimal(&mmol["metrics"]["mean"])
        ),
        "Time in range 3.9–10.0 mmol/L: greater than 70%".to_owned(),
        format!(
            "In range (3.9–10.0 mmol/L): {}%",
            one_decimal(&m["time_in_range_percent"])
        ),
    ] {
        assert!(mmol_text.contains(&line), "{line:?} not in: {mmol_text}");
    }

    // A trends-only clinician gets the same figures, but no daily curves.
    let (_, clinician_text) = report(&server, &clinician, &path).await;
    assert!(
        clinician_text.contains("this grant shows trends only")
            && clinician_text.contains(&format!("Mean glucose: {} mg/dL", one_decimal(&m["mean"]))),
        "{clinician_text}"
    );

    // The FHIR CGM summary of the same period.
    let response = server
        .http()
        .get(server.http_url(&format!("/v1/patients/{patient}/fhir/cgm-summary?{period}")))
        .bearer_auth(&clinician)
        .send()
        .await
        .expect("summary");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/fhir+json");
    let bundle: Value = response.json().await.expect("json");
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(
        run_reader(
            "fhir_validate.py",
            &serde_json::to_vec(&bundle).expect("bytes")
        )
        .trim(),
        entries.len().to_string()
    );
    assert_eq!(bundle["type"], "collection");
    let by_url = |url: &Value| {
        entries
            .iter()
            .find(|e| &e["fullUrl"] == url)
            .map(|e| &e["resource"])
            .unwrap_or_else(|| panic!("{url} is not in the bundle"))
    };
    let (patient_id, period) = (patient.to_string(), (from.to_string(), to.to_string()));
    let period = (period.0.as_str(), period.1.as_str());
    let summary = &entries[0]["resource"];
    assert_summary_base(summary, "cgm-summary", "107931-8", &patient_id, period);
    let members: Vec<&Value> = summary["hasMember"]
        .as_array()
        .expect("hasMember")
        .iter()
        .map(|r| by_url(&r["reference"]))
        .collect();
    assert!(members.len() >= 6, "the guide asks for 6 members or more");
    assert_eq!(entries.len(), members.len() + 1);
    let member = |code: &str| {
        let found: Vec<&&Value> = members
            .iter()
            .filter(|o| code_of(&o["code"]) == code)
            .collect();
        assert_eq!(found.len(), 1, "one member coded {code}: {summary}");
        *found[0]
    };
    let checks = [
        (
            "cgm-summary-mean-glucose-mass-per-volume",
            "97507-8",
            "mg/dL",
            "mg/dl",
            m["mean"].clone(),
        ),
        (
            "cgm-summary-mean-glucose-moles-per-volume",
            "105273-7",
            "mmol/L",
            "mmol/l",
            json!(m["mean"].as_f64().unwrap_or(0.0) / 18.01559),
        ),
        (
            "cgm-summary-gmi",
            "97506-0",
            "%",
            "%",
            m["gmi_percent"].clone(),
        ),
        (
            "cgm-summary-coefficient-of-variation",
            "104638-2",
            "%",
            "%",
            m["cv_percent"].clone(),
        ),
        (
            "cgm-summary-days-of-wear",
            "104636-6",
            "d",
            "days",
            json!(m["days_with_cgm"].as_f64()),
        ),
        (
            "cgm-summary-sensor-active-percentage",
            "104637-4",
            "%",
            "%",
            m["cgm_active_percent"].clone(),
        ),
    ];
    for (profile, code, ucum, unit, value) in &checks {
        let o = member(code);
        assert_summary_base(o, profile, code, &patient_id, period);
        if *code == "105273-7" {
            let v = o["valueQuantity"]["value"].as_f64().unwrap_or(f64::NAN);
            assert!((v - value.as_f64().unwrap_or(0.0)).abs() < 1e-9, "{o}");
            assert_eq!(o["valueQuantity"]["code"], *ucum);
            assert_eq!(o["valueQuantity"]["unit"], *unit);
        } else {
            assert_quantity(&o["valueQuantity"], ucum, unit, value);
        }
    }
    let tir = member("106793-3");
    assert_summary_base(
        tir,
        "cgm-summary-times-in-ranges",
        "106793-3",
        &patient_id,
        period,
    );
    let components = tir["component"].as_array().expect("components");
    assert_eq!(components.len(), 5, "{tir}");
    for (code, field) in [
        ("104642-4", "time_very_low_percent"),
        ("104641-6", "time_low_percent"),
        ("97510-2", "time_in_range_percent"),
        ("104640-8", "time_high_percent"),
        ("104639-0", "time_very_high_percent"),
    ] {
        let c = components
            .iter()
            .find(|c| code_of(&c["code"]) == code)
            .unwrap_or_else(|| panic!("component {code}: {tir}"));
        assert_quantity(&c["valueQuantity"], "%", "%", &m[field]);
    }

    // The CapabilityStatement needs no token and declares the summary profiles.
    let (status, capability) = api
        .call(None, reqwest::Method::GET, "/v1/fhir/metadata", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{capability}");
    assert_eq!(
        run_reader(
            "fhir_validate.py",
            &serde_json::to_vec(&capability).expect("bytes")
        )
        .trim(),
        "1"
    );
    assert_eq!(capability["fhirVersion"], "4.0.1");
    let profiles = &capability["rest"][0]["resource"][0]["supportedProfile"];
    for (profile, ..) in &checks {
        assert!(
            profiles
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == &json!(format!("{IG}{profile}")))),
            "{profile} not declared: {capability}"
        );
    }

    // Every read is in the patient's access log, under its own action.
    let log = api
        .get_ok(
            &amy,
            &format!("/v1/patients/{patient}/access-log?limit=100"),
        )
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "read_glucose_report")
            .count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "read_cgm_summary").count(),
        1,
        "{actions:?}"
    );

    // A period without readings has no summary to give: an empty, valid Bundle.
    let empty = api
        .get_ok(
            &clinician,
            &format!("/v1/patients/{patient}/fhir/cgm-summary?from=2020-01-01&to=2020-01-14"),
        )
        .await;
    assert_eq!(empty["entry"], json!([]), "{empty}");
}
