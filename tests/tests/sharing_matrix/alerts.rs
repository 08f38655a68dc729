//! The alert endpoints in the authorization matrix: receiving a patient's alerts needs a
//! grant allowing `receive_alerts` on the alert's category (glucose or blood pressure);
//! targets are changed only by the care team. Every attempt is in the patient's log.

use super::World;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose};
use chronicle_tests::TestDevice;
use chronicle_tests::eventually;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The patient's two live alerts: `no_data` for the CGM silent since its last reading an hour
/// ago (glucose), and a blood-pressure crisis.
struct Alerts {
    glucose: Uuid,
    pressure: Uuid,
}

async fn raise_alerts(w: &World) -> Alerts {
    let (cuff, secret) = w
        .server
        .add_device(&w.patient.to_string(), "bp")
        .await
        .expect("cuff");
    let mut cuff = TestDevice::connect(w.server.mqtt_port(), &cuff, Some(&secret))
        .await
        .expect("connect");
    let crisis = json!({"type": "blood_pressure", "systolic": 190, "diastolic": 100,
        "measured_at": Utc::now().to_rfc3339()});
    assert_eq!(cuff.send(crisis.to_string()).await.expect("ack").stored, 1);
    let rows: Vec<(Uuid, String)> = eventually(
        std::time::Duration::from_secs(20),
        "the patient's alerts",
        || async {
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, rule FROM alerts WHERE patient_id = $1 AND kind = 'alert'",
            )
            .bind(w.patient)
            .fetch_all(&w.db.pool)
            .await
            .ok()?;
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    let id = |rule: &str| {
        rows.iter()
            .find(|(_, r)| r == rule)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| panic!("no {rule} alert in {rows:?}"))
    };
    Alerts {
        glucose: id("no_data"),
        pressure: id("bp_crisis"),
    }
}

/// The read endpoints' statuses: (alerts, targets, target changes).
type AlertReads = [u16; 3];

/// Checks the reads, that nothing leaks in a refusal, and that each attempt is logged with
/// the right outcome (an endpoint may ask the gate once per category). Returns the alert ids
/// the caller was shown.
async fn check_reads(w: &World, state: &str, who: &str, expected: AlertReads) -> BTreeSet<Uuid> {
    let p = w.patient;
    let paths = [
        format!("/v1/patients/{p}/alerts"),
        format!("/v1/patients/{p}/targets"),
        format!("/v1/patients/{p}/targets/changes"),
    ];
    let mut shown = BTreeSet::new();
    for (path, want) in paths.iter().zip(expected) {
        let before = last_log_id(w).await;
        let (status, body) = w.call(who, Method::GET, path, None).await;
        assert_eq!(status.as_u16(), want, "{state}: {who} GET {path}: {body}");
        if want >= 400 {
            assert!(
                body.get("items").is_none() && body.get("code").is_some(),
                "{state}: {who} GET {path} leaked {body}"
            );
        }
        let outcomes = outcomes_since(w, before).await;
        assert!(
            !outcomes.is_empty(),
            "{state}: {who} GET {path} was not logged"
        );
        assert_eq!(
            outcomes.iter().any(|o| o == "allowed"),
            want == 200,
            "{state}: {who} GET {path} logged as {outcomes:?}"
        );
        if let Some(items) = body["items"].as_array() {
            // Live alerts (late data in the world also left historical events).
            shown.extend(
                items
                    .iter()
                    .filter(|a| a["kind"] == "alert")
                    .filter_map(|a| a["id"].as_str())
                    .filter_map(|id| id.parse::<Uuid>().ok()),
            );
        }
    }
    shown
}

async fn last_log_id(w: &World) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM access_log WHERE patient_id = $1")
        .bind(w.patient)
        .fetch_one(&w.db.pool)
        .await
        .expect("log")
}

async fn outcomes_since(w: &World, id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT outcome FROM access_log WHERE patient_id = $1 AND id > $2 ORDER BY id",
    )
    .bind(w.patient)
    .bind(id)
    .fetch_all(&w.db.pool)
    .await
    .expect("log")
}

/// POSTs an action on an alert and returns the status (after checking it was logged).
async fn act(w: &World, who: &str, alert: Uuid, action: &str) -> u16 {
    let before = last_log_id(w).await;
    let path = format!("/v1/patients/{}/alerts/{alert}/{action}", w.patient);
    let (status, body) = w.call(who, Method::POST, &path, Some(json!({}))).await;
    if status.is_client_error() {
        assert!(
            body.get("code").is_some() && body.get("id").is_none(),
            "{body}"
        );
    }
    assert!(
        !outcomes_since(w, before).await.is_empty(),
        "{who} POST {path} was not logged"
    );
    status.as_u16()
}

async fn snooze(w: &World, who: &str, method: Method) -> u16 {
    let path = format!("/v1/patients/{}/alerts/snooze", w.patient);
    let body = (method == Method::POST).then(|| json!({"minutes": 10}));
    w.call(who, method, &path, body).await.0.as_u16()
}

async fn put_targets(w: &World, who: &str, body: Value) -> u16 {
    let path = format!("/v1/patients/{}/targets", w.patient);
    w.call(who, Method::PUT, &path, Some(body)).await.0.as_u16()
}

pub(super) async fn check(w: &World) {
    w.revoke_all().await;
    let alerts = raise_alerts(w).await;
    let both = BTreeSet::from([alerts.glucose, alerts.pressure]);
    let (n, f, r) = (404u16, 403u16, 200u16);
    let nobody: AlertReads = [n, n, n];
    let team = Grantee::CareTeam(w.team);
    use Access::*;
    use DataCategory::*;

    // No grant: the patient and their guardian receive everything; nobody else anything.
    for who in ["patient", "guardian"] {
        assert_eq!(
            check_reads(w, "no grant", who, [r, r, r]).await,
            both,
            "{who}"
        );
    }
    for who in [
        "caregiver",
        "clinician",
        "other_org_clinician",
        "researcher",
        "admin",
    ] {
        check_reads(w, "no grant", who, nobody).await;
        if who != "admin" && who != "researcher" {
            assert!(super::panel_row(w, who).await.is_none(), "{who}'s panel");
        }
        assert_eq!(act(w, who, alerts.glucose, "acknowledge").await, n, "{who}");
        assert_eq!(snooze(w, who, Method::POST).await, n, "{who}");
        assert_eq!(snooze(w, who, Method::DELETE).await, n, "{who}");
        assert_eq!(put_targets(w, who, json!({})).await, n, "{who}");
    }
    let anonymous = w
        .call(
            "anonymous",
            Method::GET,
            &format!("/v1/patients/{}/alerts", w.patient),
            None,
        )
        .await
        .0;
    assert_eq!(anonymous, StatusCode::UNAUTHORIZED);

    // Glucose alerts for the clinician's team: the glucose alert only.
    w.grant_to(
        team,
        &[Glucose],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    assert_eq!(
        check_reads(w, "glucose alerts", "clinician", [r, r, r]).await,
        BTreeSet::from([alerts.glucose])
    );
    check_reads(w, "glucose alerts", "other_org_clinician", nobody).await;
    check_reads(w, "glucose alerts", "caregiver", nobody).await;
    // The panel counts only the alerts the caller receives (the glucose one; the clinician's
    // emergency access from earlier shows readings, never alerts), and lists the patient to
    // nobody else.
    let row = super::panel_row(w, "clinician")
        .await
        .expect("the clinician's panel lists the patient");
    let counted = row["open_alerts"]["open"].as_u64().unwrap_or(0)
        + row["open_alerts"]["acknowledged"].as_u64().unwrap_or(0);
    assert_eq!(counted, 1, "only the glucose alert: {row}");
    assert!(super::panel_row(w, "other_org_clinician").await.is_none());
    assert!(super::panel_row(w, "caregiver").await.is_none());
    assert_eq!(
        act(w, "clinician", alerts.pressure, "acknowledge").await,
        f,
        "wrong category"
    );
    assert_eq!(
        act(w, "other_org_clinician", alerts.glucose, "acknowledge").await,
        n
    );
    assert_eq!(snooze(w, "clinician", Method::POST).await, r);
    assert_eq!(snooze(w, "clinician", Method::DELETE).await, r);
    // Changing blood-pressure thresholds needs blood-pressure alerts too.
    let (_, current) = w
        .call(
            "clinician",
            Method::GET,
            &format!("/v1/patients/{}/targets", w.patient),
            None,
        )
        .await;
    let mut bp_change = current["alert_thresholds"].clone();
    bp_change["preset"] = json!("custom");
    bp_change["blood_pressure"]["crisis_systolic"] = json!(170);
    assert_eq!(
        put_targets(w, "clinician", json!({"alert_thresholds": bp_change})).await,
        f
    );
    assert_eq!(
        put_targets(
            w,
            "clinician",
            json!({"glucose_targets": {"preset": "older_high_risk"}})
        )
        .await,
        r
    );
    assert_eq!(
        put_targets(
            w,
            "patient",
            json!({"glucose_targets": {"preset": "standard"}})
        )
        .await,
        f,
        "the patient reads targets; the care team sets them"
    );
    assert_eq!(act(w, "clinician", alerts.glucose, "acknowledge").await, r);
    assert_eq!(
        act(w, "clinician", alerts.glucose, "acknowledge").await,
        409
    );
    w.revoke_all().await;
    check_reads(w, "revoked", "clinician", nobody).await;
    assert_eq!(act(w, "clinician", alerts.glucose, "resolve").await, n);

    // Both categories, for the full team: everything, and blood-pressure thresholds too.
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    assert_eq!(
        check_reads(w, "both categories", "clinician", [r, r, r]).await,
        both
    );
    assert_eq!(
        put_targets(w, "clinician", json!({"alert_thresholds": bp_change})).await,
        r
    );
    let (_, changes) = w
        .call(
            "patient",
            Method::GET,
            &format!("/v1/patients/{}/targets/changes", w.patient),
            None,
        )
        .await;
    assert_eq!(
        changes.as_array().map(Vec::len),
        Some(2),
        "every change recorded: {changes}"
    );
    w.revoke_all().await;

    // Wrong category (device information, or readings without alerts), trends only, expired.
    w.grant_to(
        team,
        &[DeviceInfo],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(w, "wrong category", "clinician", [f, f, f]).await;
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ViewReadings],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(w, "readings without alerts", "clinician", [f, f, f]).await;
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ViewTrends],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(w, "trends only", "clinician", [f, f, f]).await;
    assert_eq!(act(w, "clinician", alerts.pressure, "resolve").await, f);
    w.revoke_all().await;
    w.grant_to(
        team,
        &[Glucose],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |g| {
            g.expires_at = Some(Utc::now() - Duration::seconds(1));
        },
    )
    .await;
    check_reads(w, "expired", "clinician", nobody).await;
    w.revoke_all().await;

    // A window: alerts triggered before it stay hidden, and cannot be acted on.
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |g| {
            g.data_since = Some(Utc::now());
        },
    )
    .await;
    assert_eq!(
        check_reads(w, "data_since", "clinician", [r, r, r]).await,
        BTreeSet::new()
    );
    assert_eq!(act(w, "clinician", alerts.pressure, "resolve").await, n);
    w.revoke_all().await;

    // Another patient's grant, another organization's team, a caregiver, research.
    w.grant_to(
        team,
        &[Glucose, BloodPressure],
        &[ReceiveAlerts],
        Purpose::Care,
        w.other_patient,
        |_| {},
    )
    .await;
    check_reads(w, "grant on another patient", "clinician", nobody).await;
    w.grant_to(
        Grantee::CareTeam(w.other_team),
        &[Glucose, BloodPressure],
        &[ReceiveAlerts],
        Purpose::Care,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(w, "another organization's team", "clinician", nobody).await;
    assert_eq!(
        check_reads(
            w,
            "another organization's team",
            "other_org_clinician",
            [r, r, r]
        )
        .await,
        both
    );
    assert_eq!(
        act(w, "other_org_clinician", alerts.pressure, "resolve").await,
        r
    );
    w.revoke_all().await;
    let carer = super::user_id(w, "carer@example.org").await;
    w.grant_to(
        Grantee::User(carer),
        &[Glucose],
        &[ReceiveAlerts],
        Purpose::Caregiving,
        w.patient,
        |_| {},
    )
    .await;
    check_reads(w, "caregiving", "caregiver", [r, r, r]).await;
    assert_eq!(
        put_targets(
            w,
            "caregiver",
            json!({"glucose_targets": {"preset": "standard"}})
        )
        .await,
        f,
        "caregivers do not set targets"
    );
    // A caregiver acknowledges for themselves, once (their grant holds it), and never resolves.
    assert_eq!(act(w, "caregiver", alerts.glucose, "acknowledge").await, r);
    assert_eq!(
        act(w, "caregiver", alerts.glucose, "acknowledge").await,
        409
    );
    assert_eq!(act(w, "caregiver", alerts.glucose, "resolve").await, f);
    let researcher = super::user_id(w, "res@uni.example").await;
    w.grant_to(
        Grantee::User(researcher),
        &[Glucose],
        &[ReceiveAlerts],
        Purpose::Research,
        w.patient,
        |_| {},
    )
    .await;
    // Alerts are identified: a study is refused as a stranger is, so it does not learn that
    // the record id belongs to it.
    check_reads(w, "research", "researcher", nobody).await;
    w.revoke_all().await;
    assert_eq!(
        act(w, "caregiver", alerts.glucose, "acknowledge").await,
        n,
        "a revoked caregiver acknowledges nothing"
    );

    // Emergency access opens readings, never alerts (the clinician's is still open).
    check_reads(w, "emergency", "clinician", nobody).await;
    assert_eq!(act(w, "clinician", alerts.glucose, "resolve").await, n);
}
