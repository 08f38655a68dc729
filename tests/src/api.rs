//! The HTTP API as a client sees it: JSON calls with an optional bearer token, and log-in.

use crate::ServerUnderTest;
use chronicle_domain::sharing::Role;
use chronicle_storage::Store;
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::NewUser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// A client of one server's HTTP API.
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub fn new(server: &impl ServerUnderTest) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: server.http_url(""),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request (with `token` as the bearer, and `body` as JSON) and returns the status
    /// and the JSON body (`null` when the body is empty or not JSON).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Some(token), Method::GET, path, None).await
    }

    /// A GET that must answer 200; returns the body.
    pub async fn get_ok(&self, token: &str, path: &str) -> Value {
        let (status, body) = self.get(token, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A GET that must answer 200 with a body that is not JSON (CSV); returns the text.
    pub async fn get_text_ok(&self, token: &str, path: &str) -> String {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("HTTP request");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("text")
    }

    /// Logs in and returns the session token; fails the test if log-in is refused.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                None,
                Method::POST,
                "/v1/auth/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "log-in of {email}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

/// Creates a user who logs in with `password` (its e-mail doubles as display name) and
/// returns their id.
pub async fn create_user(
    store: &Store,
    email: &str,
    role: Role,
    patient_id: Option<Uuid>,
    password: &str,
) -> Uuid {
    store
        .create_user(&NewUser {
            email: email.into(),
            display_name: email.into(),
            role,
            password_hash: Some(hash_password(password).expect("argon2 hash")),
            patient_id,
        })
        .await
        .expect("user")
        .id
}
