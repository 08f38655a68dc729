//! People's own channels in the authorization matrix: every kind of user adds a personal
//! webhook, the patient has a very low, and exactly those the patient's sharing lets receive
//! glucose alerts get a notification — each told only what their grant shows — with every
//! attempt in the patient's access log. The channel routes themselves are the caller's own
//! (`/v1/me/…`): another user's channel is 404, here for confirming an e-mail address and
//! having its code sent (`alert_channels.rs` has the rest), and an unconfirmed address is
//! sent nothing.

use super::world;
use axum::extract::{Path, State};
use axum::routing::post;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose};
use chronicle_tests::{TestDevice, eventually};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn record(
    State(received): State<Received>,
    Path(who): Path<String>,
    body: axum::Json<Value>,
) -> StatusCode {
    received.lock().expect("lock").push((who, body.0));
    StatusCode::OK
}

const EVERYONE: [&str; 7] = [
    "patient",
    "guardian",
    "caregiver",
    "clinician",
    "other_org_clinician",
    "researcher",
    "admin",
];

#[tokio::test]
async fn alarms_reach_exactly_the_channels_the_grants_allow_told_what_each_may_see() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/{who}", post(record))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let w = world().await;
    let carer = super::user_id(&w, "carer@example.org").await;
    let researcher = super::user_id(&w, "res@uni.example").await;
    w.grant_to(
        Grantee::CareTeam(w.team),
        &[DataCategory::Glucose, DataCategory::BloodPressure],
        &[Access::ViewReadings, Access::ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    w.grant_to(
        Grantee::User(carer),
        &[DataCategory::Glucose],
        &[Access::ViewTrends, Access::ReceiveAlerts],
        Purpose::Caregiving,
        w.patient,
        |_| {},
    )
    .await;
    w.grant_to(
        Grantee::User(researcher),
        &[DataCategory::Glucose],
        &[Access::ViewReadings, Access::ReceiveAlerts],
        Purpose::Research,
        w.patient,
        |_| {},
    )
    .await;
    // The other clinic's team holds a grant of the other patient only.
    w.grant_to(
        Grantee::CareTeam(w.other_team),
        &[DataCategory::Glucose],
        &[Access::ViewReadings, Access::ReceiveAlerts],
        Purpose::Care,
        w.other_patient,
        |_| {},
    )
    .await;
    // Every user adds a personal webhook, and an e-mail address which stays unconfirmed (this
    // server has no SMTP relay, so no code is sent): it must receive nothing, and nobody but
    // its owner may confirm it or have a code sent to it.
    let mut email_channels = BTreeMap::new();
    for who in EVERYONE {
        for channel in [
            json!({"kind": "webhook", "url": format!("{base}/{who}")}),
            json!({"kind": "email", "address": format!("{who}@matrix.example")}),
        ] {
            let (status, body) = w
                .call(who, Method::POST, "/v1/me/channels", Some(channel))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{who}: {body}");
            if body["channel"]["kind"] == "email" {
                assert_eq!(body["channel"]["confirmed"], false, "{who}: {body}");
                email_channels.insert(who, body["channel"]["id"].as_str().expect("id").to_owned());
            }
        }
    }
    for (owner, id) in &email_channels {
        for who in EVERYONE.iter().copied().chain(["anonymous"]) {
            if who == *owner {
                continue;
            }
            let expected = if who == "anonymous" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::NOT_FOUND
            };
            for (path, body) in [
                (
                    format!("/v1/me/channels/{id}/confirm"),
                    Some(json!({"code": "AAAA-AAAA"})),
                ),
                (format!("/v1/me/channels/{id}/confirmation"), None),
            ] {
                let (status, answer) = w.call(who, Method::POST, &path, body).await;
                assert_eq!(status, expected, "{who} on {owner}'s {path}: {answer}");
            }
        }
    }

    let (cgm, secret) = w
        .server
        .add_device(&w.patient.to_string(), "cgm")
        .await
        .expect("cgm");
    let mut cgm = TestDevice::connect(w.server.mqtt_port(), &cgm, Some(&secret))
        .await
        .expect("connect");
    let low = json!({"type": "glucose", "value": 45, "unit": "mg/dL",
        "measured_at": Utc::now().to_rfc3339()});
    assert_eq!(cgm.send(low.to_string()).await.expect("ack").stored, 1);
    let (alert, event): (Uuid, i64) = eventually(
        std::time::Duration::from_secs(20),
        "the very low",
        || async {
            sqlx::query_as(
                "SELECT a.id, e.id FROM alerts a JOIN alert_events e ON e.alert_id = a.id
                 WHERE a.patient_id = $1 AND a.rule = 'glucose_very_low' AND e.kind = 'opened'",
            )
            .bind(w.patient)
            .fetch_optional(&w.db.pool)
            .await
            .ok()
            .flatten()
        },
    )
    .await;
    // Deliveries are queued with the event: once none of them is pending, all were sent.
    eventually(
        std::time::Duration::from_secs(20),
        "the deliveries sent",
        || async {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notification_deliveries
                 WHERE event_id = $1 AND status = 'pending'",
            )
            .bind(event)
            .fetch_one(&w.db.pool)
            .await
            .ok()?;
            (pending == 0).then_some(())
        },
    )
    .await;

    let to_unconfirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_deliveries d
         JOIN notification_channels c ON c.id = d.channel_id WHERE c.kind = 'email'",
    )
    .fetch_one(&w.db.pool)
    .await
    .expect("count");
    assert_eq!(
        to_unconfirmed, 0,
        "nothing queued for an unconfirmed address"
    );

    let told: BTreeMap<String, Value> = received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, body)| body["alert"]["id"] == alert.to_string())
        .map(|(who, body)| (who.clone(), body.clone()))
        .collect();
    let receivers: Vec<&str> = told.keys().map(String::as_str).collect();
    assert_eq!(
        receivers,
        ["caregiver", "clinician", "guardian", "patient"],
        "the researcher (research grants are never identified), the other clinic and the \
         administrator hold nothing that receives this patient's alerts"
    );
    for who in ["patient", "guardian", "clinician"] {
        assert_eq!(told[who]["detail"], "full", "{who}: {}", told[who]);
        assert_eq!(told[who]["alert"]["rule"], "glucose_very_low");
        assert!(told[who]["alert"]["evidence"].is_object());
    }
    assert_eq!(told["caregiver"]["detail"], "summary");
    assert_eq!(told["caregiver"]["alert"].get("rule"), None);
    assert_eq!(told["caregiver"]["alert"].get("evidence"), None);

    // Each receiver's attempt is in the patient's access log, and only theirs.
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.email, l.outcome FROM access_log l JOIN users u ON u.id = l.actor_id
         WHERE l.patient_id = $1 AND l.action = 'notify_alert' ORDER BY u.email",
    )
    .bind(w.patient)
    .fetch_all(&w.db.pool)
    .await
    .expect("log");
    let allowed: Vec<&str> = actors
        .iter()
        .filter(|(_, outcome)| outcome == "allowed")
        .map(|(email, _)| email.as_str())
        .collect();
    for email in [
        "carer@example.org",
        "guardian@example.org",
        "lee@north.example",
        "pat@example.org",
    ] {
        assert!(allowed.contains(&email), "{email} missing in {actors:?}");
    }
    assert!(
        actors.iter().all(|(email, _)| [
            "carer@example.org",
            "guardian@example.org",
            "lee@north.example",
            "pat@example.org"
        ]
        .contains(&email.as_str())),
        "nobody else was asked about: {actors:?}"
    );
    // Each user's log holds their own deliveries only.
    for who in ["other_org_clinician", "researcher", "admin"] {
        let (status, log) = w.call(who, Method::GET, "/v1/me/notifications", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(log, json!([]), "{who}");
    }
    let (_, log) = w
        .call("caregiver", Method::GET, "/v1/me/notifications", None)
        .await;
    assert!(
        log.as_array()
            .expect("log")
            .iter()
            .all(|d| d["patient_id"] == w.patient.to_string()),
        "{log}"
    );
}
