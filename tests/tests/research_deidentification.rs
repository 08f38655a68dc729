//! Research reads de-identify beyond pseudonyms: each study moves times by a secret shift that
//! is not a whole number of days, rounds them to the minute, withholds the most recent days
//! (so the newest reading served does not give the shift away), and answers 404 for anything
//! that is not one of its pseudonyms.

use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_tests::{ApiClient, TestApp, TestDatabase, TestDevice, create_user};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

const PASSWORD: &str = "a research password that is long enough";

#[tokio::test]
async fn a_study_sees_shifted_minute_times_without_the_most_recent_days() {
    let db = TestDatabase::create().await.expect("database");
    // The default hold-back: 14 days, stretched by up to half again per study.
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = server.store();
    let patient = server.add_patient("Robin").await.expect("patient");
    let patient_id: Uuid = patient.parse().expect("uuid");
    let (device, secret) = server.add_device(&patient, "cgm").await.expect("device");
    let mut cgm = TestDevice::connect(server.mqtt_port(), &device, Some(&secret))
        .await
        .expect("connect");
    // Old readings with seconds in their times, and recent ones a study must not get.
    let now = Utc::now();
    let old: Vec<DateTime<Utc>> = [40 * 24 * 60, 40 * 24 * 60 - 7, 30 * 24 * 60 + 1]
        .iter()
        .map(|m| now - Duration::minutes(*m) - Duration::seconds(23))
        .collect();
    let recent: Vec<DateTime<Utc>> = [2 * 24 * 60, 60]
        .iter()
        .map(|m| now - Duration::minutes(*m))
        .collect();
    let readings: Vec<_> = old
        .iter()
        .chain(&recent)
        .map(|at| json!({"type": "glucose", "value": 111, "unit": "mg/dL", "measured_at": at.to_rfc3339()}))
        .collect();
    let ack = cgm
        .send(json!({ "readings": readings }).to_string())
        .await
        .expect("ack");
    assert_eq!(ack.stored, 5);

    let researcher = create_user(store, "res@uni.example", Role::Researcher, None, PASSWORD).await;
    store
        .create_grant(&NewGrant {
            patient_id,
            grantee: Grantee::User(researcher),
            categories: [DataCategory::Glucose].into_iter().collect(),
            access: [Access::ViewReadings].into_iter().collect(),
            purpose: Purpose::Research,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("research grant");
    let api = ApiClient::new(&server);
    let token = api.login("res@uni.example", PASSWORD).await;
    let listed = api.get_ok(&token, "/v1/patients").await;
    let pseudonym = listed[0]["patient_id"]
        .as_str()
        .expect("the study's pseudonym")
        .to_owned();
    assert_ne!(pseudonym, patient);

    let path = format!("/v1/research/patients/{pseudonym}/glucose");
    let first = api.get_ok(&token, &path).await;
    let shifted: Vec<DateTime<Utc>> = first
        .as_array()
        .expect("readings")
        .iter()
        .map(|r| {
            r["shifted_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .expect("a time")
                .with_timezone(&Utc)
        })
        .collect();
    assert_eq!(
        shifted.len(),
        old.len(),
        "the most recent days are withheld: {first}"
    );
    for (true_at, shown) in old.iter().zip(&shifted) {
        assert_eq!(shown.timestamp() % 60, 0, "rounded to the minute: {shown}");
        assert_eq!(shown.timestamp_subsec_nanos(), 0, "{shown}");
        let shift = *true_at - *shown;
        assert!(
            shift >= Duration::days(30) && shift < Duration::days(396),
            "shifted by {shift}"
        );
        // Never a whole number of days (it is at least half an hour off one), so clock times
        // do not carry over either.
        let into_day = shift.num_seconds() % 86_400;
        assert!(
            (1_700..=84_700).contains(&into_day),
            "the shift is {into_day} s past whole days"
        );
    }
    // One shift for the study: differences between readings survive to the minute.
    let spacing = |times: &[DateTime<Utc>]| -> Vec<i64> {
        times
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .collect()
    };
    let true_spacing = spacing(&old);
    let shown_spacing = spacing(&shifted);
    for (t, s) in true_spacing.iter().zip(&shown_spacing) {
        assert!((t - s).abs() <= 1, "{true_spacing:?} vs {shown_spacing:?}");
    }
    // The same answer again: the shift is the study's, not drawn per request.
    assert_eq!(api.get_ok(&token, &path).await, first);
    // No true time appears.
    let true_times: BTreeSet<String> = old.iter().chain(&recent).map(|t| t.to_rfc3339()).collect();
    assert!(!first.to_string().contains(&patient));
    for time in &true_times {
        assert!(!first.to_string().contains(time.as_str()));
    }

    // Anything but the study's pseudonym is 404: the record id, another id, and the
    // identified endpoints for the real patient (which would otherwise confirm membership).
    for id in [patient.clone(), Uuid::new_v4().to_string()] {
        let (status, body) = api
            .get(&token, &format!("/v1/research/patients/{id}/glucose"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
    }
    for identified in ["glucose", "blood-pressure", "trends/glucose"] {
        let (status, body) = api
            .get(&token, &format!("/v1/patients/{patient}/{identified}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{identified}: {body}");
    }
}
