//! Care-team invitations in the authorization matrix: only the team's members invite (and
//! list and withdraw) for it; anyone signed in may open a code they hold; only the patient or
//! their guardian accepts for the patient's record, and accepting is an ordinary grant to the
//! team, logged like any other attempt.

use super::World;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Every invitation endpoint (they carry no `{patient_id}`: the record is in the body).
const COVERED: &[(&str, &str)] = &[
    ("GET", "/v1/care-teams"),
    ("GET", "/v1/care-teams/{team_id}/invitations"),
    ("POST", "/v1/care-teams/{team_id}/invitations"),
    (
        "DELETE",
        "/v1/care-teams/{team_id}/invitations/{invitation_id}",
    ),
    ("GET", "/v1/invitations/{code}"),
    ("POST", "/v1/invitations/{code}/accept"),
    // The team's own escalation (no patient data; members of the team only).
    ("GET", "/v1/care-teams/{team_id}/members"),
    ("PUT", "/v1/care-teams/{team_id}/members/{user_id}/duty"),
    ("GET", "/v1/care-teams/{team_id}/escalation"),
    ("PUT", "/v1/care-teams/{team_id}/escalation"),
    ("DELETE", "/v1/care-teams/{team_id}/escalation"),
];

const NOT_THE_TEAM: [&str; 6] = [
    "patient",
    "guardian",
    "caregiver",
    "other_org_clinician",
    "researcher",
    "admin",
];

pub(crate) async fn check(w: &World, openapi: &Value) {
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        if path.starts_with("/v1/care-teams") || path.starts_with("/v1/invitations") {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    let covered: BTreeSet<(String, String)> = COVERED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, covered,
        "an invitation endpoint is not in the matrix"
    );

    w.revoke_all().await;
    // The emergency access opened earlier in the matrix would open the record regardless.
    sqlx::query("UPDATE emergency_accesses SET expires_at = opened_at + interval '1 second'")
        .execute(&w.db.pool)
        .await
        .expect("emergency accesses closed");
    let (team, p) = (w.team, w.patient);
    let invitations = format!("/v1/care-teams/{team}/invitations");

    // A clinician sees their own teams; nobody else has any.
    let (status, teams) = w
        .call("clinician", Method::GET, "/v1/care-teams", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{teams}");
    assert_eq!(teams[0]["id"], json!(team), "{teams}");
    assert_eq!(teams[0]["organization_name"], "North Clinic", "{teams}");
    for who in NOT_THE_TEAM {
        let (_, theirs) = w.call(who, Method::GET, "/v1/care-teams", None).await;
        assert!(
            theirs
                .as_array()
                .expect("list")
                .iter()
                .all(|t| t["id"] != json!(team)),
            "{who} sees the team: {theirs}"
        );
        // Inviting, listing and withdrawing for a team are its members' alone.
        for (method, body) in [(Method::POST, Some(json!({}))), (Method::GET, None)] {
            let (status, answer) = w.call(who, method.clone(), &invitations, body).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{who} {method} invitations: {answer}"
            );
        }
    }
    assert_eq!(
        w.call("anonymous", Method::POST, &invitations, Some(json!({})))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    check_escalation(w).await;

    let (status, created) = w
        .call(
            "clinician",
            Method::POST,
            &invitations,
            Some(json!({"label": "Pat, clinic visit", "max_uses": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let code = created["code"].as_str().expect("code").to_owned();
    let id = created["invitation"]["id"].as_str().expect("id").to_owned();
    let (_, listed) = w.call("clinician", Method::GET, &invitations, None).await;
    assert!(
        listed.to_string().find(&code).is_none() && listed[0]["state"] == "open",
        "the list never shows a code again: {listed}"
    );

    // Anyone signed in opens the code they hold; what the team noted stays with the team.
    let open = format!("/v1/invitations/{code}");
    assert_eq!(
        w.call("anonymous", Method::GET, &open, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    for who in ["patient", "guardian", "caregiver", "clinician", "admin"] {
        let (status, preview) = w.call(who, Method::GET, &open, None).await;
        assert_eq!(status, StatusCode::OK, "{who}: {preview}");
        assert_eq!(preview["team_name"], "North diabetes");
        assert!(preview.get("label").is_none(), "{preview}");
    }

    // Accepting for the patient's record is the patient's (or guardian's) decision, and each
    // attempt is in the patient's log.
    let accept = format!("/v1/invitations/{code}/accept");
    let trends_only =
        json!({"patient_id": p, "categories": ["glucose"], "access": ["view_trends"]});
    for who in [
        "caregiver",
        "clinician",
        "other_org_clinician",
        "researcher",
        "admin",
    ] {
        let logged = w.log_len().await;
        let (status, answer) = w
            .call(who, Method::POST, &accept, Some(trends_only.clone()))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who} accepts: {answer}");
        assert_eq!(
            w.log_len().await,
            logged + 1,
            "{who}'s attempt is not logged"
        );
        assert_eq!(w.last_outcome().await, "denied");
    }
    let for_someone_else = json!({"patient_id": w.other_patient});
    assert_eq!(
        w.call("patient", Method::POST, &accept, Some(for_someone_else))
            .await
            .0,
        StatusCode::NOT_FOUND,
        "a patient accepts only for their own record"
    );
    let logged = w.log_len().await;
    let (status, grant) = w
        .call("guardian", Method::POST, &accept, Some(trends_only.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert_eq!(w.log_len().await, logged + 1);
    assert_eq!(w.last_outcome().await, "allowed");
    assert_eq!(grant["grantee"]["type"], "care_team");
    assert_eq!(grant["grantee"]["id"], json!(team));
    assert_eq!(grant["access"], json!(["view_trends"]), "{grant}");
    // What the patient chose, not what the team suggested, is what the team gets.
    let glucose = format!("/v1/patients/{p}/glucose");
    let trends = format!("/v1/patients/{p}/trends/glucose");
    assert_eq!(
        w.call("clinician", Method::GET, &glucose, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call("clinician", Method::GET, &trends, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        w.call("other_org_clinician", Method::GET, &trends, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, again) = w
        .call("patient", Method::POST, &accept, Some(trends_only.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "accepted twice: {again}");

    // Withdrawing is the team's; afterwards nobody accepts it, and the grants it made stay
    // the patients' to revoke.
    let (_, second) = w
        .call("clinician", Method::POST, &invitations, Some(json!({})))
        .await;
    let second_code = second["code"].as_str().expect("code");
    let withdraw = format!(
        "{invitations}/{}",
        second["invitation"]["id"].as_str().expect("id")
    );
    assert_eq!(
        w.call("other_org_clinician", Method::DELETE, &withdraw, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, withdrawn) = w.call("clinician", Method::DELETE, &withdraw, None).await;
    assert_eq!(status, StatusCode::OK, "{withdrawn}");
    assert_eq!(withdrawn["state"], "revoked");
    let (status, late) = w
        .call(
            "patient",
            Method::POST,
            &format!("/v1/invitations/{second_code}/accept"),
            Some(json!({"patient_id": p})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    assert!(
        late["detail"]
            .as_str()
            .is_some_and(|d| d.contains("withdrawn")),
        "{late}"
    );
    let (_, listed) = w.call("clinician", Method::GET, &invitations, None).await;
    let first = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["id"] == json!(id))
        .expect("the first invitation");
    assert_eq!(first["uses"], 1, "{listed}");
    assert_eq!(
        w.call("clinician", Method::GET, &trends, None).await.0,
        StatusCode::OK
    );

    // An expired invitation says so, typed however the patient types it.
    sqlx::query("UPDATE care_team_invitations SET expires_at = now() - interval '1 minute'")
        .execute(&w.db.pool)
        .await
        .expect("expired");
    let sloppy = code.to_lowercase().replace('-', " ");
    let (status, preview) = w
        .call(
            "patient",
            Method::GET,
            &format!("/v1/invitations/{sloppy}"),
            None,
        )
        .await;
    assert_eq!(
        (status, &preview["state"]),
        (StatusCode::OK, &json!("expired")),
        "{preview}"
    );
    w.revoke_all().await;
    assert_eq!(
        w.call("clinician", Method::GET, &trends, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, expired) = w
        .call(
            "patient",
            Method::POST,
            &accept,
            Some(json!({"patient_id": p})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{expired}");
    assert!(
        expired["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{expired}"
    );
    assert_eq!(
        w.call(
            "patient",
            Method::GET,
            "/v1/invitations/0000-0000-0000",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

/// A team's members, duties and escalation policy: its members read and change them; nobody
/// else learns that the team exists, and nothing is changed by their attempts.
async fn check_escalation(w: &World) {
    let team = w.team;
    let members = format!("/v1/care-teams/{team}/members");
    let escalation = format!("/v1/care-teams/{team}/escalation");
    let (status, listed) = w.call("clinician", Method::GET, &members, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let member = listed[0]["user_id"].as_str().expect("a member").to_owned();
    let duty = format!("{members}/{member}/duty");
    let policy = json!({"steps": [{"after_seconds": 0, "members": [member], "duties": []}],
                        "renotify_every_seconds": 300});
    // A policy in place first, so an outsider's DELETE would have something to remove.
    let (status, set) = w
        .call("clinician", Method::PUT, &escalation, Some(policy.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let other_policy = json!({"steps": [{"members": [member]}]});
    let attempts = [
        (Method::GET, members.clone(), None),
        (Method::PUT, duty.clone(), Some(json!({"duty": "intruder"}))),
        (Method::GET, escalation.clone(), None),
        (Method::PUT, escalation.clone(), Some(other_policy)),
        (Method::DELETE, escalation.clone(), None),
    ];
    for (method, path, body) in &attempts {
        assert_eq!(
            w.call("anonymous", method.clone(), path, body.clone())
                .await
                .0,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}"
        );
        for who in NOT_THE_TEAM {
            let (status, answer) = w.call(who, method.clone(), path, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{who} {method} {path}: {answer}"
            );
        }
    }
    let (_, listed) = w.call("clinician", Method::GET, &members, None).await;
    assert!(
        listed
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["duty"] != "intruder"),
        "{listed}"
    );
    let (status, _) = w
        .call(
            "clinician",
            Method::PUT,
            &duty,
            Some(json!({"duty": "nurse"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Nobody outside changed anything: the policy and the duty are the member's.
    assert_eq!(
        w.call("clinician", Method::GET, &escalation, None).await.1["policy"],
        policy
    );
    let (status, _) = w.call("clinician", Method::DELETE, &escalation, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
