//! The sharing model's storage against a real PostgreSQL: tokens resolve to principals with
//! current memberships, grants round-trip and revoke, and the access log is append-only.

use chronicle_domain::sharing::{
    Access, AccessAction, AccessRequest, Basis, DataCategory, Decision, Grantee, Purpose, Role,
    decide,
};
use chronicle_storage::credentials::{hash_password, verify_password};
use chronicle_storage::identity::{NewUser, TokenKind};
use chronicle_storage::sharing::{AccessAttempt, NewGrant};
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::TestDatabase;
use chrono::{Duration, Utc};

async fn store() -> (TestDatabase, Store) {
    let db = TestDatabase::create().await.expect("database");
    let store = Store::from_pool(db.pool.clone());
    store.migrate().await.expect("migrations");
    (db, store)
}

fn user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: email.into(),
        role,
        password_hash: None,
        patient_id: None,
    }
}

#[tokio::test]
async fn tokens_resolve_to_principals_with_current_memberships() {
    let (_db, store) = store().await;
    let org = store
        .create_organization("North Clinic")
        .await
        .expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes team")
        .await
        .expect("team");
    let lee = store
        .create_user(&NewUser {
            password_hash: Some(hash_password("s3cret-pass").expect("hash")),
            ..user("Dr.Lee@clinic.example", Role::Clinician)
        })
        .await
        .expect("user");
    store
        .add_team_member(team.id, lee.id)
        .await
        .expect("member");

    let (found, hash) = store
        .user_for_login("dr.lee@CLINIC.example")
        .await
        .expect("query")
        .expect("found by e-mail, any case");
    assert_eq!(found.id, lee.id);
    assert!(verify_password(
        "s3cret-pass",
        hash.as_deref().expect("has a password")
    ));
    assert!(
        store
            .create_user(&user("DR.LEE@clinic.example", Role::Clinician))
            .await
            .is_err(),
        "e-mail is unique, any case"
    );

    let issued = store
        .issue_token(
            lee.id,
            TokenKind::Session,
            None,
            Some(Utc::now() + Duration::hours(1)),
        )
        .await
        .expect("token");
    let principal = store
        .principal_for_token(&issued.token)
        .await
        .expect("query")
        .expect("valid token");
    assert_eq!(principal.role, Some(Role::Clinician));
    assert_eq!(principal.care_teams, vec![team.id]);
    assert_eq!(
        principal.organizations,
        vec![org.id],
        "a team member belongs to the team's organization"
    );

    store
        .remove_team_member(team.id, lee.id)
        .await
        .expect("remove");
    let principal = store
        .principal_for_token(&issued.token)
        .await
        .expect("query")
        .expect("still valid");
    assert!(
        principal.care_teams.is_empty(),
        "membership changes apply on the next request"
    );

    assert!(store.revoke_token(lee.id, issued.id).await.expect("revoke"));
    assert!(
        store
            .principal_for_token(&issued.token)
            .await
            .expect("query")
            .is_none(),
        "revoked"
    );
    let expired = store
        .issue_token(
            lee.id,
            TokenKind::Api,
            Some("ci"),
            Some(Utc::now() - Duration::seconds(1)),
        )
        .await
        .expect("token");
    assert!(
        store
            .principal_for_token(&expired.token)
            .await
            .expect("query")
            .is_none(),
        "expired"
    );
    assert!(
        store
            .principal_for_token("chr_not-a-token")
            .await
            .expect("query")
            .is_none()
    );
}

#[tokio::test]
async fn stored_grants_drive_decisions_and_revocation_is_immediate() {
    let (_db, store) = store().await;
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Pat".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .await
        .expect("patient");
    let org = store
        .create_organization("North Clinic")
        .await
        .expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes team")
        .await
        .expect("team");
    let lee = store
        .create_user(&user("lee@clinic.example", Role::Clinician))
        .await
        .expect("user");
    store
        .add_team_member(team.id, lee.id)
        .await
        .expect("member");
    let token = store
        .issue_token(lee.id, TokenKind::Session, None, None)
        .await
        .expect("token");

    let grant = store
        .create_grant(&NewGrant {
            patient_id: patient.id,
            grantee: Grantee::CareTeam(team.id),
            categories: [DataCategory::Glucose].into(),
            access: [Access::ViewReadings].into(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: Some(Utc::now() + Duration::days(30)),
            created_by: None,
        })
        .await
        .expect("grant");
    let principal = store
        .principal_for_token(&token.token)
        .await
        .expect("query")
        .expect("principal");
    let ask = |category| AccessRequest {
        patient_id: patient.id,
        category,
        access: Access::ViewReadings,
        at: Utc::now(),
        identified: true,
    };
    let grants = store.grants_for_patient(patient.id).await.expect("grants");
    assert_eq!(grants, vec![grant.clone()], "a grant round-trips unchanged");
    assert_eq!(
        decide(&principal, &ask(DataCategory::Glucose), &grants, &[])
            .allowance()
            .map(|a| a.basis),
        Some(Basis::Grant(grant.id))
    );
    assert!(matches!(
        decide(&principal, &ask(DataCategory::BloodPressure), &grants, &[]),
        Decision::Deny(_)
    ));

    store
        .revoke_grant(patient.id, grant.id)
        .await
        .expect("revoke")
        .expect("exists");
    let grants = store.grants_for_patient(patient.id).await.expect("grants");
    assert!(
        matches!(
            decide(&principal, &ask(DataCategory::Glucose), &grants, &[]),
            Decision::Deny(_)
        ),
        "revocation applies at once"
    );
    let stranger = store
        .create_patient(&NewPatient {
            display_name: "Other".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient");
    assert!(
        store
            .revoke_grant(stranger.id, grant.id)
            .await
            .expect("query")
            .is_none(),
        "only the grant's patient can revoke it"
    );
}

#[tokio::test]
async fn the_access_log_is_append_only() {
    let (db, store) = store().await;
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Pat".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient");
    for allowed in [true, false] {
        store
            .append_access_log(&AccessAttempt {
                actor_id: None,
                actor_role: Some("clinician".into()),
                patient_id: patient.id,
                action: AccessAction::ReadGlucoseReadings,
                category: Some(DataCategory::Glucose),
                purpose: Some(Purpose::Care),
                grant_id: None,
                emergency_id: None,
                allowed,
                reason: (!allowed).then(|| "no_grant".into()),
            })
            .await
            .expect("append");
    }
    let log = store.access_log(patient.id, None, 10).await.expect("log");
    assert_eq!(
        log.iter()
            .map(|e| (e.attempt.allowed, e.attempt.action, e.attempt.category))
            .collect::<Vec<_>>(),
        vec![
            (
                false,
                AccessAction::ReadGlucoseReadings,
                Some(DataCategory::Glucose)
            ),
            (
                true,
                AccessAction::ReadGlucoseReadings,
                Some(DataCategory::Glucose)
            ),
        ]
    );
    let older = store
        .access_log(patient.id, Some(log[0].id), 10)
        .await
        .expect("page");
    assert_eq!(older.len(), 1);

    for statement in [
        "UPDATE access_log SET outcome = 'allowed'",
        "DELETE FROM access_log",
        "TRUNCATE access_log",
    ] {
        let error = sqlx::query(statement)
            .execute(&db.pool)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(db.count("access_log").await, 2);
}

/// Emergency access needs a care relationship — a care grant of the patient, even a revoked
/// one, naming the clinician's team — is one at a time, and is limited to three openings by
/// one clinician for one patient in seven days.
#[tokio::test]
async fn emergency_access_needs_a_care_relationship_and_is_rationed() {
    let (_db, store) = store().await;
    let org = store.create_organization("North").await.expect("org");
    let team = store
        .create_care_team(org.id, "Diabetes")
        .await
        .expect("team");
    let lee = store
        .create_user(&user("lee@north.example", Role::Clinician))
        .await
        .expect("clinician");
    store
        .add_team_member(team.id, lee.id)
        .await
        .expect("member");
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Pat".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient")
        .id;
    let lee_principal = chronicle_domain::sharing::Principal {
        user_id: lee.id,
        role: Some(Role::Clinician),
        patient_id: None,
        guardian_of: Vec::new(),
        care_teams: vec![team.id],
        organizations: Vec::new(),
        share_link: false,
    };
    let open = |expires_in: Duration| {
        let store = store.clone();
        let principal = lee_principal.clone();
        async move {
            store
                .open_emergency_access_as(
                    &principal,
                    patient,
                    "found unconscious at home",
                    Utc::now() + expires_in,
                )
                .await
        }
    };
    assert!(
        open(Duration::hours(4)).await.expect("query").is_none(),
        "no care relationship: refused as an unknown patient"
    );
    let grant = store
        .create_grant(&NewGrant {
            patient_id: patient,
            grantee: Grantee::CareTeam(team.id),
            categories: [DataCategory::Glucose].into_iter().collect(),
            access: [Access::ViewTrends].into_iter().collect(),
            purpose: Purpose::Care,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
    store
        .revoke_grant(patient, grant.id)
        .await
        .expect("revoked");
    assert!(
        open(Duration::hours(4)).await.expect("opens").is_some(),
        "a past care grant is a care relationship"
    );
    let second = open(Duration::hours(4)).await;
    assert!(
        matches!(&second, Err(chronicle_storage::StorageError::Refused(why)) if why.contains("already open")),
        "one at a time: {second:?}"
    );
    // Two more after each ran out (moved into the past), then the weekly limit refuses.
    let run_out = || async {
        sqlx::query(
            "UPDATE emergency_accesses
             SET opened_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'",
        )
        .execute(&_db.pool)
        .await
        .expect("run out");
    };
    for _ in 0..2 {
        run_out().await;
        assert!(open(Duration::hours(4)).await.expect("opens").is_some());
    }
    run_out().await;
    let fourth = open(Duration::hours(4)).await;
    assert!(
        matches!(&fourth, Err(chronicle_storage::StorageError::Refused(why)) if why.contains("at most 3")),
        "{fourth:?}"
    );
}
