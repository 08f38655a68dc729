//! Where webhooks may send patient data, and how they are sent: only HTTPS to public addresses
//! unless the operator allow-lists a destination; no redirects; a delivery log without internal
//! detail; and deliveries side by side, so a receiver that never answers delays no one else.

use axum::http::{StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::post;
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::Store;
use chronicle_storage::sharing::NewGrant;
use chronicle_tests::api::{ApiClient, create_user};
use chronicle_tests::clinic::{Clinic, PASSWORD, batch, glucose};
use chronicle_tests::{TestApp, TestDatabase, TestDevice, eventually};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;
use uuid::Uuid;

/// An administrator of `clinic`'s organization, logged in.
async fn organization_admin(store: &Store, api: &ApiClient, clinic: &Clinic) -> String {
    let email = format!("admin@{}.example", clinic.organization);
    let admin = create_user(store, &email, Role::Admin, None, PASSWORD).await;
    store
        .add_organization_member(clinic.organization, admin)
        .await
        .expect("member");
    api.login(&email, PASSWORD).await
}

async fn register(api: &ApiClient, token: &str, clinic: &Clinic, url: &str) -> (StatusCode, Value) {
    api.call(
        Some(token),
        Method::POST,
        &format!("/v1/organizations/{}/webhooks", clinic.organization),
        Some(json!({"url": url})),
    )
    .await
}

#[tokio::test]
async fn internal_and_plain_destinations_are_refused_at_registration() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = server.store();
    let clinic = Clinic::new(store, "North").await;
    let api = ApiClient::new(&server);
    let token = organization_admin(store, &api, &clinic).await;
    for url in [
        "http://hooks.example.org/chronicle",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://localhost./hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://0.0.0.0/hook",
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://[::ffff:10.0.0.1]/hook",
    ] {
        let (status, body) = register(&api, &token, &clinic, url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("https") || d.contains("internal")),
            "{url}: {body}"
        );
    }
    let (status, body) = register(&api, &token, &clinic, "https://hooks.example.org/x").await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a public https destination: {body}"
    );
}

/// A receiver that counts the POSTs it gets and answers with `answer`.
async fn receiver(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let answer = answer.clone();
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                answer()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test]
async fn redirects_are_not_followed_the_log_is_plain_and_a_slow_receiver_delays_no_one() {
    // A receiver that never answers, one that redirects to another, and a prompt one.
    let (target_url, target_hits) = receiver(|| AxumStatus::OK.into_response()).await;
    let redirect_to = target_url.clone();
    let (redirect_url, redirect_hits) = receiver(move || {
        (AxumStatus::FOUND, [(header::LOCATION, redirect_to.clone())]).into_response()
    })
    .await;
    let (prompt_url, prompt_hits) = receiver(|| AxumStatus::OK.into_response()).await;
    // The silent one: accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hanging_url = format!("http://{}/hook", hanging.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });

    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &["--webhook-allow", "127.0.0.1"])
        .await
        .expect("server");
    let store = server.store();
    let api = ApiClient::new(&server);
    // Three clinics, each with a webhook, all caring for one patient. The hanging receiver's
    // webhook is registered first, so a dispatcher working one delivery at a time would make
    // the others wait for its timeout.
    let clinics = [
        Clinic::new(store, "Slow").await,
        Clinic::new(store, "Redirecting").await,
        Clinic::new(store, "Prompt").await,
    ];
    let mut hooks: Vec<(String, String)> = Vec::new();
    for (clinic, url) in clinics
        .iter()
        .zip([&hanging_url, &redirect_url, &prompt_url])
    {
        let token = organization_admin(store, &api, clinic).await;
        let (status, created) = register(&api, &token, clinic, url).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        hooks.push((
            token,
            created["webhook"]["id"].as_str().expect("id").to_owned(),
        ));
    }
    let (patient, _) = clinics[0].patient("Shared").await;
    for clinic in &clinics[1..] {
        store
            .create_grant(&NewGrant {
                patient_id: patient,
                grantee: Grantee::CareTeam(clinic.team),
                categories: [DataCategory::Glucose].into_iter().collect(),
                access: [Access::ReceiveAlerts].into_iter().collect(),
                purpose: Purpose::Care,
                data_since: None,
                expires_at: None,
                created_by: None,
            })
            .await
            .expect("grant");
    }
    let credentials = clinics[0].device(patient, DeviceKind::Cgm).await;
    let mut cgm = TestDevice::connect(
        server.mqtt_port(),
        credentials.id.as_str(),
        Some(&credentials.secret),
    )
    .await
    .expect("device");
    let ack = cgm
        .send(batch(&[glucose(Utc::now() - Duration::minutes(1), 45.0)]))
        .await
        .expect("ack");
    assert_eq!(ack.stored, 1);

    // The prompt receiver has its alert long before the hanging one could time out (10 s).
    eventually(
        StdDuration::from_secs(6),
        "the prompt receiver's delivery",
        || async { (prompt_hits.load(Ordering::SeqCst) > 0).then_some(()) },
    )
    .await;

    // The redirect is an answer, not an instruction: its target never gets the data.
    let log_path = |clinic: &Clinic, hook: &str| {
        format!(
            "/v1/organizations/{}/webhooks/{hook}/deliveries",
            clinic.organization
        )
    };
    let redirect_log = eventually(
        StdDuration::from_secs(10),
        "the redirect recorded",
        || async {
            let log = api
                .get_ok(&hooks[1].0, &log_path(&clinics[1], &hooks[1].1))
                .await;
            let attempts = log.as_array()?.first()?["attempts"].as_array()?.clone();
            (!attempts.is_empty()).then_some(log)
        },
    )
    .await;
    assert!(redirect_hits.load(Ordering::SeqCst) > 0);
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "a redirect is not followed"
    );
    let attempt = &redirect_log[0]["attempts"][0];
    assert_eq!(attempt["status_code"], 302, "{redirect_log}");
    assert_eq!(
        attempt["error"], "the receiver answered 302",
        "{redirect_log}"
    );

    // The hanging receiver's attempt ends in a plain word, with no address or library text.
    let slow_log = eventually(
        StdDuration::from_secs(30),
        "the timeout recorded",
        || async {
            let log = api
                .get_ok(&hooks[0].0, &log_path(&clinics[0], &hooks[0].1))
                .await;
            let attempts = log.as_array()?.first()?["attempts"].as_array()?.clone();
            (!attempts.is_empty()).then_some(log)
        },
    )
    .await;
    let error = slow_log[0]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(error, "timed out", "{slow_log}");
    let text = slow_log.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("error sending"),
        "{text}"
    );
    let _: Uuid = hooks[0].1.parse().expect("webhook id");
}
