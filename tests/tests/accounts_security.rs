//! Account security over the HTTP API, one test per way in a hostile user tried: guessing
//! passwords (throttled, 429 with Retry-After), telling which e-mails have accounts (the same
//! answer and the same argon2 work), failed log-ins going unnoticed (recorded, shown to
//! administrators and to the account's user), tokens that never expire or outlive a password
//! change or a disabled account, and weak passwords.

use chronicle_domain::sharing::Role;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, create_user};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const ADMIN_EMAIL: &str = "admin@clinic.example";
const ADMIN_PASSWORD: &str = "administrator password";
const PAT_EMAIL: &str = "pat@example.org";
const PAT_PASSWORD: &str = "lantern monsoon tapir";

/// A server with an administrator and a patient's account (Pat).
struct World {
    db: TestDatabase,
    server: TestApp,
    api: ApiClient,
    pat_id: String,
}

async fn world_with(serve_args: &[&str]) -> World {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, serve_args).await.expect("server");
    let store = server.store().clone();
    create_user(&store, ADMIN_EMAIL, Role::Admin, None, ADMIN_PASSWORD).await;
    let patient = server.add_patient("Pat").await.expect("patient");
    let pat_id = create_user(
        &store,
        PAT_EMAIL,
        Role::Patient,
        Some(patient.parse().expect("uuid")),
        PAT_PASSWORD,
    )
    .await
    .to_string();
    let api = ApiClient::new(&server);
    World {
        db,
        server,
        api,
        pat_id,
    }
}

async fn world() -> World {
    world_with(&[]).await
}

impl World {
    /// A log-in attempt: the status, the `Retry-After` header and the body.
    async fn try_login(&self, email: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
        self.try_login_with(email, password, &[]).await
    }

    async fn try_login_with(
        &self,
        email: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<u64>, Value) {
        let mut request = self
            .api
            .http
            .post(self.api.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (
            status,
            retry_after,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api.call(Some(token), method, path, body).await
    }

    /// The server's count of argon2 verifications (`/metrics`).
    async fn password_verifications(&self) -> f64 {
        let metrics = self.server.metrics().await.expect("metrics");
        metrics
            .value("chronicle_password_verifications_total")
            .unwrap_or_else(|| panic!("no verification counter in {}", metrics.text))
    }

    async fn admin_events(&self, admin: &str, query: &str) -> Vec<Value> {
        let (status, page) = self
            .call(
                admin,
                Method::GET,
                &format!("/v1/admin/authentication-events{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().expect("items").clone()
    }

    async fn my_events(&self, token: &str) -> Vec<Value> {
        let (status, page) = self
            .call(token, Method::GET, "/v1/me/authentication-events", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().expect("items").clone()
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect()
}

#[tokio::test]
async fn repeated_failed_log_ins_are_throttled_even_for_the_right_password() {
    let w = world().await;
    for attempt in 1..=5 {
        let (status, _, body) = w.try_login(PAT_EMAIL, "not the password").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
    }
    let (status, retry_after, body) = w.try_login(PAT_EMAIL, PAT_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "too_many_requests", "{body}");
    assert_eq!(body["status"], 429);
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    // Any case of the e-mail names the same account.
    let (status, _, _) = w.try_login("PAT@example.ORG", PAT_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // An e-mail no account has is throttled alike: throttling tells nothing of who exists.
    for _ in 1..=5 {
        let (status, _, _) = w.try_login("nobody@example.org", "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, retry_after, _) = w.try_login("nobody@example.org", "guess").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());

    // Other accounts from the same address still log in.
    w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn unknown_e_mail_and_wrong_password_answer_alike_after_the_same_argon2_work() {
    let w = world().await;
    let admin = w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, _) = w
        .call(
            &admin,
            Method::POST,
            &format!("/v1/admin/users/{}/disable", w.pat_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut answers = Vec::new();
    for (email, password) in [
        ("nobody@example.org", "some password"),
        (ADMIN_EMAIL, "not the password"),
        // Disabled: the right password, and still the same answer.
        (PAT_EMAIL, PAT_PASSWORD),
    ] {
        let before = w.password_verifications().await;
        let (status, _, body) = w.try_login(email, password).await;
        let after = w.password_verifications().await;
        assert_eq!(
            after - before,
            1.0,
            "{email}: exactly one argon2 verification, whether or not the account exists"
        );
        answers.push((status, body));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(answers[0].1["code"], "invalid_credentials");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the same status and body: {answers:?}"
    );
}

#[tokio::test]
async fn log_ins_are_recorded_for_administrators_and_for_the_account_owner() {
    let w = world().await;
    let (status, _, _) = w.try_login(PAT_EMAIL, "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    w.try_login("nobody@example.org", "guess").await;
    // A password typed into the e-mail field is not kept.
    w.try_login("correct horse battery", "guess").await;
    // A client's own X-Forwarded-For is not believed: no proxy is trusted by default.
    w.try_login_with(
        "forged@example.org",
        "guess",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let pat = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;

    // Pat sees the failure and the success on their account, and nothing of anyone else.
    let mine = w.my_events(&pat).await;
    assert_eq!(
        kinds(&mine),
        ["login_succeeded", "login_failed"],
        "{mine:?}"
    );
    assert_eq!(mine[1]["failure"], "wrong_password");
    assert_eq!(mine[1]["user_id"], w.pat_id.as_str());
    assert!(mine[1]["email_tried"].is_null());
    for event in &mine {
        assert_eq!(event["client_address"], "127.0.0.1", "{event}");
        assert!(event["occurred_at"].is_string());
    }
    assert!(mine[0]["token_id"].is_string(), "the session's id");
    let (status, _) = w
        .call(&pat, Method::GET, "/v1/admin/authentication-events", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "administrators only");

    // The administrator sees every account's, and log-ins that named no account.
    let admin = w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let all = w.admin_events(&admin, "").await;
    let failures: Vec<(&Value, &Value, &Value)> = all
        .iter()
        .filter(|e| e["kind"] == "login_failed")
        .map(|e| (&e["failure"], &e["email_tried"], &e["client_address"]))
        .collect();
    let unknown = json!("unknown_account");
    let localhost = json!("127.0.0.1");
    assert_eq!(
        failures,
        [
            (&unknown, &json!("forged@example.org"), &localhost),
            (&unknown, &Value::Null, &localhost),
            (&unknown, &json!("nobody@example.org"), &localhost),
            (&json!("wrong_password"), &Value::Null, &localhost),
        ],
        "{all:?}"
    );
    let patients = w
        .admin_events(&admin, &format!("?user_id={}", w.pat_id))
        .await;
    assert_eq!(kinds(&patients), kinds(&mine));
    // Paging: one at a time, newest first.
    let first = w.admin_events(&admin, "?limit=1").await;
    assert_eq!(first[0]["kind"], "login_succeeded");
    let (_, page) = w
        .call(
            &admin,
            Method::GET,
            "/v1/admin/authentication-events?limit=1",
            None,
        )
        .await;
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let second = w
        .admin_events(&admin, &format!("?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second[0]["kind"], "login_succeeded");
    assert_ne!(second[0]["id"], first[0]["id"]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let w = world_with(&["--http-trusted-proxies", "127.0.0.1"]).await;
    w.try_login_with(
        "nobody@example.org",
        "guess",
        &[("x-forwarded-for", "198.51.100.4, 203.0.113.9")],
    )
    .await;
    let admin = w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let all = w.admin_events(&admin, "").await;
    let failed = all
        .iter()
        .find(|e| e["kind"] == "login_failed")
        .expect("the failure");
    assert_eq!(
        failed["client_address"], "203.0.113.9",
        "the rightmost address the trusted proxy appended"
    );
}

#[tokio::test]
async fn api_tokens_expire_by_default_within_a_year_and_come_only_from_a_session() {
    let w = world().await;
    let session = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let (status, created) = w
        .call(
            &session,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "uploader"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let expires_at: chrono::DateTime<chrono::Utc> = created["expires_at"]
        .as_str()
        .expect("every API token expires")
        .parse()
        .expect("a time");
    let days = (expires_at - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.0).contains(&days), "90 days by default: {days}");
    let api_token = created["token"].as_str().expect("token").to_owned();

    let (status, _) = w
        .call(
            &session,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "a year", "expires_days": 365})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for too_long in [366, 3650] {
        let (status, body) = w
            .call(
                &session,
                Method::POST,
                "/v1/me/tokens",
                Some(json!({"label": "for ever", "expires_days": too_long})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{too_long}: {body}");
    }

    // An API token cannot issue another (it would renew itself for ever).
    let (status, body) = w
        .call(
            &api_token,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "renewal"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (_, listed) = w.call(&session, Method::GET, "/v1/me/tokens", None).await;
    for token in listed.as_array().expect("tokens") {
        assert!(token["expires_at"].is_string(), "{token}");
    }
    let issued = w
        .my_events(&session)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "token_issued")
        .count();
    assert_eq!(issued, 2);
}

#[tokio::test]
async fn token_issuance_is_rate_limited_per_account() {
    let w = world().await;
    let session = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let mut answers = Vec::new();
    for n in 0..11 {
        let (status, _) = w
            .call(
                &session,
                Method::POST,
                "/v1/me/tokens",
                Some(json!({"label": format!("token {n}")})),
            )
            .await;
        answers.push(status);
    }
    assert!(
        answers[..10].iter().all(|s| *s == StatusCode::CREATED),
        "{answers:?}"
    );
    assert_eq!(answers[10], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn log_out_ends_its_session_and_a_password_change_revokes_every_other_credential() {
    let w = world().await;
    let kept = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let other = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let logged_out = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let (_, created) = w
        .call(
            &kept,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "uploader"})),
        )
        .await;
    let api_token = created["token"].as_str().expect("token").to_owned();
    let works =
        async |token: &str| w.call(token, Method::GET, "/v1/me", None).await.0 == StatusCode::OK;

    // Log-out ends that session only: the API token is a credential of its own.
    let (status, _) = w
        .call(&logged_out, Method::POST, "/v1/auth/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!works(&logged_out).await);
    assert!(works(&kept).await && works(&other).await && works(&api_token).await);

    // The current password is needed, and a wrong one is recorded.
    let change = "/v1/me/password";
    let (status, body) = w
        .call(
            &kept,
            Method::POST,
            change,
            Some(json!({"current_password": "a guess", "new_password": "ocelot quartz velvet harbor"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = w
        .call(
            &kept,
            Method::POST,
            change,
            Some(json!({"current_password": PAT_PASSWORD, "new_password": "aaaaaaaaaaaa"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().expect("detail").contains("guess"),
        "{body}"
    );

    let (status, body) = w
        .call(
            &kept,
            Method::POST,
            change,
            Some(json!({"current_password": PAT_PASSWORD, "new_password": "ocelot quartz velvet harbor"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["revoked_tokens"], 2,
        "the other session and the API token"
    );
    assert!(works(&kept).await, "the session that changed it goes on");
    assert!(!works(&other).await, "other sessions end");
    assert!(!works(&api_token).await, "API tokens end");
    let (status, _, _) = w.try_login(PAT_EMAIL, PAT_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    w.api.login(PAT_EMAIL, "ocelot quartz velvet harbor").await;

    let events = w.my_events(&kept).await;
    let kinds = kinds(&events);
    for expected in [
        "password_changed",
        "password_change_failed",
        "logged_out",
        "token_issued",
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_disabled_account_is_refused_at_once_and_an_administrator_can_off_board_tokens() {
    let w = world().await;
    let admin = w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let session = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let (_, created) = w
        .call(
            &session,
            Method::POST,
            "/v1/me/tokens",
            Some(json!({"label": "uploader"})),
        )
        .await;
    let api_token = created["token"].as_str().expect("token").to_owned();
    let user = format!("/v1/admin/users/{}", w.pat_id);

    let (status, body) = w
        .call(&session, Method::POST, &format!("{user}/disable"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "administrators only: {body}");
    let (status, disabled) = w
        .call(&admin, Method::POST, &format!("{user}/disable"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    for token in [&session, &api_token] {
        assert_eq!(
            w.call(token, Method::GET, "/v1/me", None).await.0,
            StatusCode::UNAUTHORIZED,
            "a disabled account's tokens stop at once"
        );
    }
    let (status, _, body) = w.try_login(PAT_EMAIL, PAT_PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (_, users) = w.call(&admin, Method::GET, "/v1/admin/users", None).await;
    let listed = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == w.pat_id.as_str())
        .expect("Pat");
    assert!(listed["disabled_at"].is_string());

    // An administrator cannot lock themselves out.
    let (_, me) = w.call(&admin, Method::GET, "/v1/me", None).await;
    let admin_id = me["id"].as_str().expect("id");
    let (status, _) = w
        .call(
            &admin,
            Method::POST,
            &format!("/v1/admin/users/{admin_id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Enabled again: Pat logs in; what was revoked stays revoked.
    let (status, enabled) = w
        .call(&admin, Method::POST, &format!("{user}/enable"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(enabled["disabled_at"].is_null());
    let fresh = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    assert_eq!(
        w.call(&api_token, Method::GET, "/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Off-boarding tokens without disabling: every session and token of the account ends.
    let (status, revoked) = w
        .call(&admin, Method::DELETE, &format!("{user}/tokens"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(
        w.call(&fresh, Method::GET, "/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = w
        .call(
            &admin,
            Method::DELETE,
            &format!("/v1/admin/users/{}/tokens", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The account's user sees what the administrator did, and who.
    let pat = w.api.login(PAT_EMAIL, PAT_PASSWORD).await;
    let events = w.my_events(&pat).await;
    for kind in ["tokens_revoked", "account_enabled", "account_disabled"] {
        let event = events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {events:?}"));
        assert_eq!(event["actor_id"], admin_id, "{event}");
    }
    let refused = events
        .iter()
        .find(|e| e["kind"] == "login_failed")
        .expect("the refused log-in");
    assert_eq!(refused["failure"], "account_disabled");
}

#[tokio::test]
async fn weak_passwords_are_refused_by_the_api_and_the_command_line() {
    let w = world().await;
    let admin = w.api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for weak in [
        "aaaaaaaaaaaa",
        "password1234",
        "qwertyuiop12",
        "anna.meyer1990",
    ] {
        let (status, body) = w
            .call(
                &admin,
                Method::POST,
                "/v1/admin/users",
                Some(
                    json!({"email": "anna.meyer@example.org", "display_name": "Anna Meyer",
                            "role": "clinician", "password": weak}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{weak}: {body}");
    }
    let (status, body) = w
        .call(
            &admin,
            Method::POST,
            "/v1/admin/users",
            Some(
                json!({"email": "anna.meyer@example.org", "display_name": "Anna Meyer",
                        "role": "clinician", "password": "ocelot quartz velvet harbor"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // `chronicle user add --password-stdin` applies the same policy.
    let data_dir = tempfile::tempdir().expect("dir");
    let mut child = tokio::process::Command::new(
        chronicle_tests::server::chronicle_binary().expect("the chronicle binary"),
    )
    .env_remove("CHRONICLE_DATABASE_URL")
    .arg("--database-url")
    .arg(&w.db.url)
    .arg("--data-dir")
    .arg(data_dir.path())
    .args([
        "user",
        "add",
        "--email",
        "weak@example.org",
        "--name",
        "Weak",
        "--role",
        "clinician",
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("chronicle user add");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"aaaaaaaaaaaa\n").await.expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("exit");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("too easy to guess"), "{stderr}");
}
