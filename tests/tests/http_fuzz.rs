//! Every route of the API, fed generated arbitrary input: path parameters, query strings and
//! JSON bodies, anonymous and authenticated. Whatever arrives, the server answers without a
//! server error, and every refusal is an RFC 9457 problem with a stable code and a detail.
//!
//! Bounded in the test command; for a longer run:
//! `CHRONICLE_FUZZ_REQUESTS=20000 CHRONICLE_FUZZ_SEED=7 cargo test -p chronicle-tests --test http_fuzz`.

use chronicle_domain::sharing::Role;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long password for the fuzzed accounts";

/// Any JSON value, nested a few levels, with the API's own field names among the keys.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        nasty_text().prop_map(Value::String),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "email",
            "password",
            "grantee",
            "type",
            "id",
            "categories",
            "access",
            "purpose",
            "data_since",
            "expires_at",
            "reason",
            "note",
            "kind",
            "label",
            "expires_days",
            "display_name",
            "role",
            "time_zone",
            "url",
            "rule",
            "minutes",
            "glucose_targets",
            "alert_thresholds",
            "user_id",
            "device_ids",
            "current_password",
            "new_password",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,10}",
    ]
}

fn nasty_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        " ",
        "0",
        "-1",
        "9999999999999999999999",
        "1e309",
        "NaN",
        "true",
        "null",
        "[]",
        "{}",
        "glucose",
        "care",
        "view_readings",
        "care_team",
        "mg/dL",
        "mmol/L",
        "2026-03-01T08:00:00Z",
        "2026-02-30",
        "1900-01-01T00:00:00Z",
        "Europe/Berlin",
        "Mars/Base",
        "00000000-0000-0000-0000-000000000000",
        "../../etc/passwd",
        "%00",
        "\u{0}",
        "\u{202e}",
        "😀",
        "'; DROP TABLE patients; --",
        "<script>",
    ])
    .prop_map(str::to_owned)
}

/// A value for a path parameter: a real id of the fuzzing patient, a random id, or junk.
fn path_value(real: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(real),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        nasty_text(),
        "[A-Za-z0-9._~-]{0,40}",
    ]
}

/// One generated request: which route, the text of each part, and who sends it.
#[derive(Debug, Clone)]
struct Case {
    route: usize,
    path_values: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    raw_body: Option<Vec<u8>>,
    caller: usize,
}

fn case(routes: usize, patient: String) -> impl Strategy<Value = Case> {
    (
        0..routes,
        proptest::collection::vec(path_value(patient), 3),
        proptest::collection::vec((field_name(), prop_oneof![nasty_text(), ".{0,16}"]), 0..4),
        proptest::option::of(any_json()),
        proptest::option::weighted(0.1, proptest::collection::vec(any::<u8>(), 0..64)),
        0usize..4,
    )
        .prop_map(|(route, path_values, query, body, raw_body, caller)| Case {
            route,
            path_values,
            query,
            body,
            raw_body,
            caller,
        })
}

/// A path segment carrying any text: unreserved characters as they are, the rest escaped.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn every_route_answers_arbitrary_input_without_a_server_error() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = server.store();
    let patient = server.add_patient("Fuzz Patient").await.expect("patient");
    let patient_id: uuid::Uuid = patient.parse().expect("uuid");
    create_user(
        store,
        "fuzz-patient@example.org",
        Role::Patient,
        Some(patient_id),
        PASSWORD,
    )
    .await;
    create_user(
        store,
        "fuzz-clinician@example.org",
        Role::Clinician,
        None,
        PASSWORD,
    )
    .await;
    create_user(store, "fuzz-admin@example.org", Role::Admin, None, PASSWORD).await;
    let api = ApiClient::new(&server);
    let tokens = [
        None,
        Some(api.login("fuzz-patient@example.org", PASSWORD).await),
        Some(api.login("fuzz-clinician@example.org", PASSWORD).await),
        Some(api.login("fuzz-admin@example.org", PASSWORD).await),
    ];

    // Every operation of the document, but the endless alert stream.
    let document: Value = reqwest::get(server.http_url("/openapi.json"))
        .await
        .expect("the document")
        .json()
        .await
        .expect("JSON");
    let mut routes: Vec<(Method, String)> = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        if path.ends_with("/stream") {
            continue;
        }
        for method in operations.as_object().expect("operations").keys() {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                routes.push((method, path.clone()));
            }
        }
    }
    assert!(
        routes.len() > 50,
        "the document lists the API: {}",
        routes.len()
    );

    let requests: usize = std::env::var("CHRONICLE_FUZZ_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3 * routes.len());
    let seed: u8 = std::env::var("CHRONICLE_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = case(routes.len(), patient.clone());
    let http = reqwest::Client::new();
    for n in 0..requests {
        let mut case = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        // Every route is visited in turn at least once, the rest at random.
        if n < routes.len() {
            case.route = n;
        }
        let (method, template) = &routes[case.route];
        let mut path = template.clone();
        for value in &case.path_values {
            if let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
                path.replace_range(open..=close, &percent_encoded(value));
            }
        }
        let mut request = http
            .request(method.clone(), server.http_url(&path))
            .query(&case.query);
        if let Some(token) = &tokens[case.caller] {
            request = request.bearer_auth(token);
        }
        request = match (&case.raw_body, &case.body) {
            (Some(raw), _) => request
                .header("content-type", "application/json")
                .body(raw.clone()),
            (None, Some(body)) if *method != Method::GET => request.json(body),
            _ => request,
        };
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        assert!(
            !status.is_server_error(),
            "{method} {path} {case:?} answered {status}: {text}"
        );
        if status.is_client_error() {
            let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(
                content_type, "application/problem+json",
                "{method} {path} {case:?}: {status} {text}"
            );
            assert!(
                problem["code"].as_str().is_some_and(|c| !c.is_empty())
                    && problem["detail"]
                        .as_str()
                        .is_some_and(|d| !d.trim().is_empty()),
                "{method} {path} {case:?}: {status} {text}"
            );
        }
    }
}
