//! Patient targets in storage: the standard preset by default, changes kept with who and
//! when, and erasure taking them along.

use chronicle_domain::sharing::{AccessAction, Principal, Role};
use chronicle_domain::targets::{GlucoseTargets, TargetPreset};
use chronicle_storage::identity::NewUser;
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::TestDatabase;

#[tokio::test]
async fn targets_default_to_standard_and_every_change_is_kept() {
    let db = TestDatabase::create().await.expect("database");
    let store = Store::from_pool(db.pool.clone());
    store.migrate().await.expect("migrations");
    let patient = store
        .create_patient(&NewPatient {
            display_name: "Ada".into(),
            time_zone: "Europe/Berlin".into(),
        })
        .await
        .expect("patient");
    let other = store
        .create_patient(&NewPatient {
            display_name: "Bo".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient");
    let lee = store
        .create_user(&NewUser {
            email: "lee@clinic.example".into(),
            display_name: "Dr. Lee".into(),
            role: Role::Clinician,
            password_hash: None,
            patient_id: None,
        })
        .await
        .expect("clinician");

    let targets = store
        .glucose_targets(&[patient.id, other.id])
        .await
        .expect("targets");
    assert_eq!(targets[&patient.id], GlucoseTargets::standard());
    assert_eq!(targets[&other.id], GlucoseTargets::standard());

    let pregnancy = GlucoseTargets::preset(TargetPreset::Pregnancy);
    store
        .set_glucose_targets(patient.id, &pregnancy, Some(lee.id))
        .await
        .expect("set");
    let mut custom = GlucoseTargets::preset(TargetPreset::Custom);
    custom.range_high_mg_dl = 160.0;
    store
        .set_glucose_targets(patient.id, &custom, Some(lee.id))
        .await
        .expect("set again");
    let targets = store
        .glucose_targets(&[patient.id, other.id])
        .await
        .expect("targets");
    assert_eq!(targets[&patient.id], custom);
    assert_eq!(targets[&other.id], GlucoseTargets::standard());

    let history = store
        .glucose_target_changes(patient.id)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].targets, custom, "newest first");
    assert_eq!(history[1].targets, pregnancy);
    assert!(history.iter().all(|c| c.changed_by == Some(lee.id)));

    let herself = Principal {
        user_id: uuid::Uuid::new_v4(),
        role: Some(Role::Patient),
        patient_id: Some(patient.id),
        ..Principal::default()
    };
    let actor = store
        .authorize_as_patient(&herself, patient.id, AccessAction::Erase)
        .await
        .expect("gate")
        .expect("own record");
    store.erase(&actor).await.expect("erase");
    assert_eq!(db.count("patient_targets").await, 0);
    assert_eq!(db.count("patient_target_changes").await, 0);
}
