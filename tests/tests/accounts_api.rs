//! Accounts over the HTTP API: an administrator builds a clinic (organization, team,
//! clinician, patient) without seeing any patient data; users issue, use and revoke API
//! tokens and log out; a research reader with two studies sees each under its own pseudonym.

use chronicle_domain::sharing::Role;
use chronicle_storage::Store;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use reqwest::{Method, StatusCode};
use serde_json::json;

const ADMIN_PASSWORD: &str = "administrator password";

async fn api_with_admin() -> (TestDatabase, TestApp, ApiClient) {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    create_user(
        &store,
        "admin@clinic.example",
        Role::Admin,
        None,
        ADMIN_PASSWORD,
    )
    .await;
    let api = ApiClient::new(&server);
    (db, server, api)
}

#[tokio::test]
async fn an_administrator_builds_a_clinic_and_sees_no_patient_data() {
    let (_db, _server, api) = api_with_admin().await;
    let admin = api.login("admin@clinic.example", ADMIN_PASSWORD).await;
    let admin = Some(admin.as_str());

    let (status, org) = api
        .call(
            admin,
            Method::POST,
            "/v1/admin/organizations",
            Some(json!({"name": "North Clinic"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let org_id = org["id"].as_str().expect("id").to_owned();
    let (status, team) = api
        .call(
            admin,
            Method::POST,
            &format!("/v1/admin/organizations/{org_id}/teams"),
            Some(json!({"name": "Diabetes team"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team_id = team["id"].as_str().expect("id").to_owned();

    let (status, lee) = api
        .call(
            admin,
            Method::POST,
            "/v1/admin/users",
            Some(
                json!({"email": "lee@north.example", "display_name": "Dr. Lee",
                        "role": "clinician", "password": "a good long password"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lee}");
    assert!(lee["generated_password"].is_null());
    let lee_id = lee["user"]["id"].as_str().expect("id").to_owned();
    let (status, pat) = api
        .call(
            admin,
            Method::POST,
            "/v1/admin/users",
            Some(json!({"email": "pat@example.org", "display_name": "Pat",
                        "role": "patient", "time_zone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pat}");
    let pat_password = pat["generated_password"]
        .as_str()
        .expect("a generated password, shown once")
        .to_owned();
    let patient_id = pat["user"]["patient_id"]
        .as_str()
        .expect("a patient record")
        .to_owned();
    // Refusals: a bad zone, a duplicate e-mail, a short password, an unknown role.
    for bad in [
        json!({"email": "x@example.org", "display_name": "X", "role": "patient", "time_zone": "Mars/Base"}),
        json!({"email": "PAT@example.org", "display_name": "Pat again", "role": "patient"}),
        json!({"email": "y@example.org", "display_name": "Y", "role": "clinician", "password": "short"}),
        json!({"email": "z@example.org", "display_name": "Z", "role": "wizard"}),
    ] {
        let (status, body) = api
            .call(admin, Method::POST, "/v1/admin/users", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert_eq!(body["code"], "bad_request");
    }

    let members = format!("/v1/admin/teams/{team_id}/members");
    assert_eq!(
        api.call(
            admin,
            Method::POST,
            &members,
            Some(json!({"user_id": patient_id}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "a patient's record id is not a user"
    );
    assert_eq!(
        api.call(
            admin,
            Method::POST,
            &members,
            Some(json!({"user_id": lee_id}))
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, listed) = api.call(admin, Method::GET, &members, None).await;
    assert_eq!(listed[0]["email"], "lee@north.example", "{listed}");

    // The account list names staff, not patients: once made, a patient's account shows no
    // name, e-mail or record to the operator.
    let (_, users) = api.call(admin, Method::GET, "/v1/admin/users", None).await;
    let text = users.to_string();
    assert!(text.contains("lee@north.example"), "{users}");
    for private in ["pat@example.org", "\"Pat\"", patient_id.as_str()] {
        assert!(!text.contains(private), "{private} in {users}");
    }
    // The administrator made the patient's account but sees none of their data.
    for path in [
        format!("/v1/patients/{patient_id}/glucose"),
        format!("/v1/patients/{patient_id}/grants"),
    ] {
        assert_eq!(
            api.call(admin, Method::GET, &path, None).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let (_, seen) = api.call(admin, Method::GET, "/v1/patients", None).await;
    assert_eq!(seen, json!([]));

    // Non-administrators cannot administer.
    let pat = api.login("pat@example.org", &pat_password).await;
    let lee = api.login("lee@north.example", "a good long password").await;
    for token in [&pat, &lee] {
        for (method, path) in [
            (Method::GET, "/v1/admin/users".to_owned()),
            (Method::GET, "/v1/admin/organizations".to_owned()),
            (Method::DELETE, format!("{members}/{lee_id}")),
        ] {
            assert_eq!(
                api.call(Some(token), method, &path, None).await.0,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
    }
    assert_eq!(
        api.call(None, Method::GET, "/v1/admin/users", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The patient shares with the team; the new member sees them; removal ends it at once.
    let (status, grant) = api
        .call(
            Some(&pat),
            Method::POST,
            &format!("/v1/patients/{patient_id}/grants"),
            Some(json!({"grantee": {"type": "care_team", "id": team_id},
                        "categories": ["glucose"], "access": ["view_readings"], "purpose": "care"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let glucose = format!("/v1/patients/{patient_id}/glucose");
    assert_eq!(
        api.call(Some(&lee), Method::GET, &glucose, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call(admin, Method::DELETE, &format!("{members}/{lee_id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Some(&lee), Method::GET, &glucose, None).await.0,
        StatusCode::NOT_FOUND,
        "removed from the team, no access on the next request"
    );
    // Who can read the patient's data changes only in view of the patient: every member who
    // joins or leaves a team their grant names is in their access log, with who did it.
    assert_eq!(
        api.call(
            admin,
            Method::POST,
            &members,
            Some(json!({"user_id": lee_id}))
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, log) = api
        .call(
            Some(&pat),
            Method::GET,
            &format!("/v1/patients/{patient_id}/access-log?limit=1000"),
            None,
        )
        .await;
    let changes: Vec<(&str, &str)> = log["items"]
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("grantee_member"))
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 2, "{log}");
    assert_eq!(
        changes[0].0, "grantee_member_added",
        "newest first: {changes:?}"
    );
    assert_eq!(changes[1].0, "grantee_member_removed", "{changes:?}");
    assert!(
        changes.iter().all(|(_, why)| why.contains("Dr. Lee")),
        "the member is named: {changes:?}"
    );
}

#[tokio::test]
async fn api_tokens_are_issued_used_and_revoked_and_log_out_ends_a_session() {
    let (_db, _server, api) = api_with_admin().await;
    let session = api.login("admin@clinic.example", ADMIN_PASSWORD).await;
    let (status, created) = api
        .call(
            Some(&session),
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "nightly export", "expires_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().expect("token").to_owned();
    let token_id = created["id"].as_str().expect("id").to_owned();
    let (status, me) = api.call(Some(&token), Method::GET, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "admin@clinic.example");

    let (_, tokens) = api
        .call(Some(&session), Method::GET, "/v1/me/tokens", None)
        .await;
    let listed = tokens.as_array().expect("tokens");
    assert_eq!(listed.len(), 2, "the session and the API token: {tokens}");
    assert!(
        !tokens.to_string().contains(&token),
        "a token's secret is never shown again"
    );
    assert!(
        listed
            .iter()
            .any(|t| t["kind"] == "api" && t["label"] == "nightly export")
    );

    for bad in [
        json!({"label": "  "}),
        json!({"label": "x", "expires_days": 0}),
    ] {
        assert_eq!(
            api.call(Some(&session), Method::POST, "/v1/me/tokens", Some(bad))
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
    }
    let revoke = format!("/v1/me/tokens/{token_id}");
    assert_eq!(
        api.call(Some(&session), Method::DELETE, &revoke, None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Some(&token), Method::GET, "/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working at once"
    );
    assert_eq!(
        api.call(Some(&session), Method::DELETE, &revoke, None)
            .await
            .0,
        StatusCode::NOT_FOUND,
        "revoked already"
    );

    assert_eq!(
        api.call(Some(&session), Method::POST, "/v1/auth/logout", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Some(&session), Method::GET, "/v1/me", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );
}

/// Sends `request` and checks its answer is an RFC 9457 problem with `status` and `code`,
/// never cached; returns the answer's headers and its detail.
async fn expect_problem(
    request: reqwest::RequestBuilder,
    status: StatusCode,
    code: &str,
) -> (reqwest::header::HeaderMap, String) {
    let response = request.send().await.expect("an answer");
    let headers = response.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answered = response.status();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(
        (answered, body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert_eq!(header("content-type"), "application/problem+json", "{body}");
    assert_eq!(header("cache-control"), "no-store", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["type"], format!("urn:chronicle:problem:{code}"));
    assert!(body["title"].is_string(), "{body}");
    let detail = body["detail"].as_str().expect("a detail").to_owned();
    (headers, detail)
}

/// The HTTP edge: every error is an RFC 9457 problem, axum's own rejections included; API
/// responses are never cached; each request carries an id, echoed back.
#[tokio::test]
async fn every_error_is_a_problem_and_no_response_is_cached() {
    let (_db, server, api) = api_with_admin().await;
    let admin = api.login("admin@clinic.example", ADMIN_PASSWORD).await;
    let http = reqwest::Client::new();
    let url = |path: &str| server.http_url(path);
    let bad_request = StatusCode::BAD_REQUEST;

    // A malformed JSON body (axum's rejection), and a body of the wrong shape.
    let malformed = http
        .post(url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ");
    let (_, detail) = expect_problem(malformed, bad_request, "bad_request").await;
    assert!(detail.to_lowercase().contains("json"), "{detail}");
    let wrong_shape = http.post(url("/v1/auth/login")).json(&json!({"email": 7}));
    expect_problem(wrong_shape, StatusCode::UNPROCESSABLE_ENTITY, "bad_request").await;
    // A path parameter that is not an id, and a query that does not parse.
    let not_an_id = http
        .get(url("/v1/patients/not-a-uuid/glucose"))
        .bearer_auth(&admin);
    expect_problem(not_an_id, bad_request, "bad_request").await;
    let patient = uuid::Uuid::new_v4();
    let bad_query = http
        .get(url(&format!(
            "/v1/patients/{patient}/glucose?from=yesterday"
        )))
        .bearer_auth(&admin);
    expect_problem(bad_query, bad_request, "bad_request").await;
    // A method the route does not have keeps its Allow header.
    let (headers, _) = expect_problem(
        http.delete(url("/v1/auth/login")),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(headers.contains_key("allow"));
    // A body beyond the API's limit is refused before it is read.
    let oversized = http
        .post(url("/v1/auth/login"))
        .json(&json!({"email": "a@b.example", "password": "x".repeat(70 * 1024)}));
    expect_problem(
        oversized,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // The API's own errors, and an unknown API path.
    let anonymous = http.get(url("/v1/me"));
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let unknown = http.get(url("/v1/no-such-thing")).bearer_auth(&admin);
    expect_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;

    // A success is not cached either, and carries the request's id: the client's, or a new one.
    let response = http
        .get(url("/v1/me"))
        .bearer_auth(&admin)
        .header("x-request-id", "probe-42")
        .send()
        .await
        .expect("me");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-request-id"], "probe-42");
    let response = http
        .get(url("/v1/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("me");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).map(|_| ()), Ok(()), "{id}");
}

/// A request that takes too long — here a body that never finishes arriving — is answered
/// 503 as a problem when the time is up, so no client can hold the server's work open.
#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &["--http-request-timeout-seconds", "1"])
        .await
        .expect("server");
    let address = server
        .http_url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    socket
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: chronicle\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\": ",
        )
        .await
        .expect("a partial request");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("answered well within the test's patience")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}
