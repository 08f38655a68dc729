//! Every route of the API, fed generated arbitrary input: path parameters, query strings and
//! JSON bodies, anonymous and authenticated. Whatever arrives, the server answers without a
//! server error, and every refusal is an RFC 9457 problem with a stable code and a detail.
//!
//! Bounded in the test command; for a longer run:
//! `CHRONICLE_FUZZ_REQUESTS=20000 CHRONICLE_FUZZ_SEED=7 cargo test -p chronicle-tests --test http_fuzz`.

use chronicle_domain::fuzzing::{self, nasty_text};
use chronicle_domain::sharing::Role;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long password for the fuzzed accounts";

/// The field names the code under test reads.
const API_FIELDS: &[&str] = &[
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
    "address",
    "code",
];

fn any_json() -> impl Strategy<Value = Value> {
    fuzzing::any_json(API_FIELDS)
}

fn field_name() -> impl Strategy<Value = String> {
    fuzzing::field_name(API_FIELDS)
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

/// Values for query parameters: the kinds of text their parsers meet at the edges.
fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_text(),
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "1.5",
            "1e3",
            "4294967296",
            "18446744073709551616",
            "0x10",
            "+7",
            "2026-03-01",
            "2026-03-01T08:00:00",
            "2026-03-01T08:00:00+25:00",
            "2026-03-01T08:00:00.123456789123Z",
            "-262144-01-01T00:00:00Z",
            "+262143-12-31T23:59:59Z",
            "asc",
            "desc",
            "glucose",
            "blood_pressure",
            "open",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        ".{0,16}",
    ]
}

/// The body of one generated request.
#[derive(Debug, Clone)]
enum Body {
    None,
    /// Any JSON value at all.
    Arbitrary(Value),
    /// The operation's documented body with some of its fields replaced (a value) or
    /// removed (`None`), so the parsers of each field are reached.
    Mutated(Vec<(prop::sample::Index, Option<Value>)>),
    /// Bytes that are probably not JSON, declared as JSON.
    Raw(Vec<u8>),
}

/// One generated request: which route, the text of each part, and who sends it. Query keys
/// are mostly the operation's own parameters (`Index` into them), so their parsers see the
/// values; now and then any name.
#[derive(Debug, Clone)]
struct Case {
    route: usize,
    path_values: Vec<String>,
    query: Vec<(prop::sample::Index, Option<String>, String)>,
    body: Body,
    caller: usize,
}

fn case(routes: usize, patient: String) -> impl Strategy<Value = Case> {
    let name = prop_oneof![4 => Just(None), 1 => field_name().prop_map(Some)];
    let body = prop_oneof![
        1 => Just(Body::None),
        2 => any_json().prop_map(Body::Arbitrary),
        4 => proptest::collection::vec(
            (any::<prop::sample::Index>(), proptest::option::weighted(0.8, any_json())),
            0..4,
        )
        .prop_map(Body::Mutated),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
    ];
    (
        0..routes,
        proptest::collection::vec(path_value(patient), 3),
        proptest::collection::vec((any::<prop::sample::Index>(), name, query_value()), 0..4),
        body,
        0usize..4,
    )
        .prop_map(|(route, path_values, query, body, caller)| Case {
            route,
            path_values,
            query,
            body,
            caller,
        })
}

/// One operation of the OpenAPI document, with what a fuzzer needs to reach its parsers.
struct Operation {
    method: Method,
    path: String,
    /// The names of its query parameters.
    query: Vec<String>,
    /// A body of the documented shape, every property filled in, if it takes one.
    body: Option<Value>,
}

/// A value of the shape `schema` describes: the first of its alternatives, every property of
/// an object, a plausible text for each string (a word the description names in backticks,
/// else one of the format).
fn example(schema: &Value, document: &Value, patient: &str, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return example(
            &document["components"]["schemas"][name],
            document,
            patient,
            depth + 1,
        );
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for alternatives in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[alternatives].as_array().and_then(|a| a.first()) {
            return example(first, document, patient, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema["properties"].is_object() => "object",
        _ => "null",
    };
    let named = schema["description"]
        .as_str()
        .and_then(|d| d.split('`').nth(1))
        .filter(|word| !word.contains(' ') && !word.is_empty());
    match kind {
        "object" => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, property)| {
                    (
                        name.clone(),
                        example(property, document, patient, depth + 1),
                    )
                })
                .collect(),
        ),
        "array" => {
            let item = example(&schema["items"], document, patient, depth + 1);
            match (named, item) {
                (Some(word), Value::String(_)) => json!([word]),
                (_, item) => json!([item]),
            }
        }
        "string" => json!(match (schema["format"].as_str(), named) {
            (Some("date-time"), _) => "2026-03-01T08:00:00Z",
            (Some("date"), _) => "2026-03-01",
            (Some("uuid"), _) => patient,
            (_, Some(word)) => word,
            (Some("email"), _) => "someone@example.org",
            (Some("uri"), _) => "https://example.org/hook",
            _ => "text",
        }),
        "integer" => schema["minimum"].as_i64().map_or(json!(1), |m| json!(m)),
        "number" => json!(1.5),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

/// Every operation of the document, but the endless alert stream.
fn operations(document: &Value, patient: &str) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, methods) in document["paths"].as_object().expect("paths") {
        if path.ends_with("/stream") {
            continue;
        }
        for (method, operation) in methods.as_object().expect("operations") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let body = operation["requestBody"]["content"]["application/json"]
                .get("schema")
                .map(|schema| example(schema, document, patient, 0));
            operations.push(Operation {
                method,
                path: path.clone(),
                query,
                body,
            });
        }
    }
    operations
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

/// A server with a patient and one account of each role, and the operations its API
/// document lists.
struct Fixture {
    // Kept for the server's lifetime.
    _db: TestDatabase,
    server: TestApp,
    api: ApiClient,
    patient: String,
    /// Who sends a request: nobody, then a patient, a clinician and an administrator.
    callers: [Option<&'static str>; 4],
    tokens: Vec<Option<String>>,
    routes: Vec<Operation>,
}

impl Fixture {
    async fn start() -> Fixture {
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
        let callers = [
            None,
            Some("fuzz-patient@example.org"),
            Some("fuzz-clinician@example.org"),
            Some("fuzz-admin@example.org"),
        ];
        let mut tokens = Vec::new();
        for caller in callers {
            tokens.push(match caller {
                Some(email) => Some(api.login(email, PASSWORD).await),
                None => None,
            });
        }

        let document: Value = reqwest::get(server.http_url("/openapi.json"))
            .await
            .expect("the document")
            .json()
            .await
            .expect("JSON");
        let routes = operations(&document, &patient);
        assert!(
            routes.len() > 50,
            "the document lists the API: {}",
            routes.len()
        );
        assert!(
            routes.iter().filter(|r| !r.query.is_empty()).count() > 10
                && routes.iter().filter(|r| r.body.is_some()).count() > 10,
            "the document describes query parameters and bodies"
        );
        Fixture {
            _db: db,
            server,
            api,
            patient,
            callers,
            tokens,
            routes,
        }
    }
}

#[tokio::test]
async fn every_route_answers_arbitrary_input_without_a_server_error() {
    let Fixture {
        _db,
        server,
        api,
        patient,
        callers,
        mut tokens,
        routes,
    } = Fixture::start().await;
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
    // What came back, by status and problem code: shown with `--nocapture`, to see how far
    // the generated requests get past the parsers.
    let mut answers: std::collections::BTreeMap<String, usize> = Default::default();
    for n in 0..requests {
        let mut case = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        // Every route is visited in turn at least once, the rest at random.
        if n < routes.len() {
            case.route = n;
        }
        let operation = &routes[case.route];
        let method = &operation.method;
        // Three values are generated; no route has more parameters.
        let path = filled_path(&operation.path, |n| {
            percent_encoded(&case.path_values[n % case.path_values.len()])
        });
        let query: Vec<(String, String)> = case
            .query
            .iter()
            .map(|(index, name, value)| {
                let name = match name {
                    Some(name) => name.clone(),
                    // The operation reads no query: any name, to be ignored.
                    None if operation.query.is_empty() => "page".to_owned(),
                    None => index.get(&operation.query).clone(),
                };
                (name, value.clone())
            })
            .collect();
        let mut request = http
            .request(method.clone(), server.http_url(&path))
            .query(&query);
        if let Some(token) = &tokens[case.caller] {
            request = request.bearer_auth(token);
        }
        request = match (&case.body, &operation.body) {
            (Body::Raw(raw), _) => request
                .header("content-type", "application/json")
                .body(raw.clone()),
            (Body::Mutated(changes), Some(Value::Object(documented))) => {
                let mut body = documented.clone();
                let keys: Vec<String> = documented.keys().cloned().collect();
                for (index, value) in changes {
                    if keys.is_empty() {
                        break;
                    }
                    let key = index.get(&keys);
                    match value {
                        Some(value) => body.insert(key.clone(), value.clone()),
                        None => body.remove(key),
                    };
                }
                request.json(&body)
            }
            (Body::Mutated(_), Some(documented)) => request.json(documented),
            (Body::Arbitrary(body), _) if *method != Method::GET => request.json(body),
            _ => request,
        };
        let response = request.send().await.expect("an answer");
        let (status, problem) =
            checked_answer(operation, response, &format!("{method} {path} {case:?}")).await;
        // A generated log-out ends the caller's session: a new one, or every later request
        // of that caller would stop at authentication and reach no parser.
        if status.is_success()
            && operation.path == "/v1/auth/logout"
            && let Some(email) = callers[case.caller]
        {
            tokens[case.caller] = Some(api.login(email, PASSWORD).await);
        }
        *answers
            .entry(format!(
                "{} {}",
                status.as_u16(),
                problem["code"].as_str().unwrap_or("")
            ))
            .or_default() += 1;
    }
    eprintln!("{requests} requests answered: {answers:#?}");
}

/// Text holding the NUL character is valid JSON and valid in a URL, and PostgreSQL's text
/// cannot hold it. Every text an operation takes (each path parameter, query parameter and
/// string in its documented body) is sent with NUL in turn, by each account: the server
/// refuses it as the client's fault, never with a server error.
#[tokio::test]
async fn text_with_a_nul_character_is_refused_wherever_the_api_takes_text() {
    let Fixture {
        _db,
        server,
        patient,
        callers,
        tokens,
        routes,
        ..
    } = Fixture::start().await;
    const NUL_TEXT: &str = "text\u{0}more";
    let http = reqwest::Client::new();
    let mut requests = 0;
    let mut refused_for_nul = 0;
    for operation in &routes {
        // It would end the sessions the rest of the sweep uses.
        if operation.path == "/v1/auth/logout" {
            continue;
        }
        let body_texts = operation
            .body
            .clone()
            .map_or(0, |mut body| string_leaves(&mut body).len());
        let slots = (0..path_parameters(&operation.path))
            .map(Slot::Path)
            .chain((0..operation.query.len()).map(Slot::Query))
            .chain((0..body_texts).map(Slot::Body));
        for slot in slots {
            let path = filled_path(&operation.path, |n| {
                if slot == Slot::Path(n) {
                    percent_encoded(NUL_TEXT)
                } else {
                    patient.clone()
                }
            });
            let query: Vec<(String, String)> = match slot {
                Slot::Query(n) => vec![(operation.query[n].clone(), NUL_TEXT.to_owned())],
                _ => Vec::new(),
            };
            let body = operation.body.clone().map(|mut body| {
                if let Slot::Body(n) = slot
                    && let Some(text) = string_leaves(&mut body).into_iter().nth(n)
                {
                    *text = Value::String(NUL_TEXT.to_owned());
                }
                body
            });
            for caller in 1..callers.len() {
                let mut request = http
                    .request(operation.method.clone(), server.http_url(&path))
                    .query(&query);
                if let Some(token) = &tokens[caller] {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let response = request.send().await.expect("an answer");
                requests += 1;
                let request = format!(
                    "{} {path} query {query:?} body {body:?} by {:?}",
                    operation.method, callers[caller]
                );
                let (status, problem) = checked_answer(operation, response, &request).await;
                if status == reqwest::StatusCode::BAD_REQUEST
                    && problem["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("NUL"))
                {
                    refused_for_nul += 1;
                }
            }
        }
    }
    eprintln!("{requests} requests, {refused_for_nul} refused for the NUL character");
    // Most texts stop at a parser or a permission first; those that reach the database must
    // come back as the client's error, saying why.
    assert!(
        refused_for_nul > 0,
        "no request reached the database's refusal of NUL ({requests} requests)"
    );
}

/// Where a request carries the NUL character: the nth path parameter, query parameter or
/// string of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Path(usize),
    Query(usize),
    Body(usize),
}

/// The path template with its nth `{name}` parameter replaced by `value(n)`.
fn filled_path(template: &str, mut value: impl FnMut(usize) -> String) -> String {
    let mut path = template.to_owned();
    let mut parameter = 0;
    while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
        path.replace_range(open..=close, &value(parameter));
        parameter += 1;
    }
    path
}

/// How many `{name}` parameters a path template has.
fn path_parameters(template: &str) -> usize {
    template.matches('{').count()
}

/// Every string in a JSON value, depth first, to change in place.
fn string_leaves(value: &mut Value) -> Vec<&mut Value> {
    match value {
        Value::String(_) => vec![value],
        Value::Array(items) => items.iter_mut().flat_map(string_leaves).collect(),
        Value::Object(fields) => fields.values_mut().flat_map(string_leaves).collect(),
        _ => Vec::new(),
    }
}

/// Checks one answer to `request`: never a server error, and every refusal in the format
/// clients parse (a problem with a code and a detail; an OperationOutcome on FHIR routes).
/// Returns its status and its body as JSON (`null` if it is not).
async fn checked_answer(
    operation: &Operation,
    response: reqwest::Response,
    request: &str,
) -> (reqwest::StatusCode, Value) {
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
        "{request} answered {status}: {text}"
    );
    let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    // FHIR routes refuse with an OperationOutcome (401 before them stays a problem).
    if status.is_client_error() && content_type == "application/fhir+json" {
        assert!(
            operation.path.starts_with("/v1/fhir/")
                && problem["resourceType"] == "OperationOutcome"
                && problem["issue"][0]["diagnostics"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
            "{request}: {status} {text}"
        );
    } else if status.is_client_error() {
        assert_eq!(
            content_type, "application/problem+json",
            "{request}: {status} {text}"
        );
        assert!(
            problem["code"].as_str().is_some_and(|c| !c.is_empty())
                && problem["detail"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
            "{request}: {status} {text}"
        );
    }
    (status, problem)
}
