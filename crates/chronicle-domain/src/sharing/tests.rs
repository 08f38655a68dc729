use super::*;
use chrono::Duration;
use proptest::prelude::*;

fn t(hours: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .expect("fixed time")
        + Duration::hours(hours)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const PATIENT: u128 = 1;
const OTHER_PATIENT: u128 = 2;
const CLINICIAN: u128 = 10;
const TEAM: u128 = 20;
const OTHER_TEAM: u128 = 21;
const ORG: u128 = 30;

fn clinician() -> Principal {
    Principal {
        user_id: id(CLINICIAN),
        role: Some(Role::Clinician),
        care_teams: vec![id(TEAM)],
        organizations: vec![id(ORG)],
        ..Principal::default()
    }
}

fn grant(grantee: Grantee, categories: &[DataCategory], access: &[Access]) -> Grant {
    Grant {
        id: id(100),
        patient_id: id(PATIENT),
        grantee,
        categories: categories.iter().copied().collect(),
        access: access.iter().copied().collect(),
        purpose: Purpose::Care,
        data_since: None,
        expires_at: None,
        revoked_at: None,
        created_at: t(-48),
    }
}

fn ask(category: DataCategory, access: Access) -> AccessRequest {
    AccessRequest {
        patient_id: id(PATIENT),
        category,
        access,
        at: t(0),
        identified: false,
    }
}

fn glucose_readings() -> AccessRequest {
    ask(DataCategory::Glucose, Access::ViewReadings)
}

#[test]
fn default_deny() {
    assert_eq!(
        decide(&clinician(), &glucose_readings(), &[], &[]),
        Decision::Deny(DenyReason::NoGrant)
    );
}

#[test]
fn own_data_and_guardian() {
    let patient = Principal {
        user_id: id(50),
        role: Some(Role::Patient),
        patient_id: Some(id(PATIENT)),
        ..Principal::default()
    };
    let allowance = decide(&patient, &glucose_readings(), &[], &[])
        .allowance()
        .copied()
        .expect("own data");
    assert_eq!(allowance.basis, Basis::Own);
    assert!(allowance.individual_readings && allowance.data_since.is_none());
    let other = AccessRequest {
        patient_id: id(OTHER_PATIENT),
        ..glucose_readings()
    };
    assert_eq!(
        decide(&patient, &other, &[], &[]),
        Decision::Deny(DenyReason::NoGrant)
    );

    let guardian = Principal {
        user_id: id(51),
        role: Some(Role::Caregiver),
        guardian_of: vec![id(PATIENT)],
        ..Principal::default()
    };
    assert_eq!(
        decide(&guardian, &glucose_readings(), &[], &[])
            .allowance()
            .map(|a| a.basis),
        Some(Basis::Guardian)
    );
}

/// The sharing matrix: every grant state against the request it must allow or deny.
#[test]
fn grant_states() {
    use Access::*;
    use DataCategory::*;
    let user = Grantee::User(id(CLINICIAN));
    let team = Grantee::CareTeam(id(TEAM));
    let org = Grantee::Organization(id(ORG));
    let full = grant(
        team,
        &[Glucose, BloodPressure],
        &[ViewReadings, ReceiveAlerts],
    );
    let cases: Vec<(&str, Grant, AccessRequest, Option<DenyReason>)> = vec![
        ("team grant", full.clone(), glucose_readings(), None),
        (
            "user grant",
            grant(user, &[Glucose], &[ViewReadings]),
            glucose_readings(),
            None,
        ),
        (
            "organization grant",
            grant(org, &[Glucose], &[ViewReadings]),
            glucose_readings(),
            None,
        ),
        (
            "readings imply trends",
            full.clone(),
            ask(Glucose, ViewTrends),
            None,
        ),
        (
            "wrong category",
            full.clone(),
            ask(DeviceInfo, ViewReadings),
            Some(DenyReason::CategoryNotGranted),
        ),
        (
            "export not granted",
            full.clone(),
            ask(Glucose, Export),
            Some(DenyReason::AccessNotGranted),
        ),
        (
            "trends only",
            grant(team, &[Glucose], &[ViewTrends]),
            glucose_readings(),
            Some(DenyReason::AccessNotGranted),
        ),
        (
            "expired",
            Grant {
                expires_at: Some(t(0)),
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "not expired yet",
            Grant {
                expires_at: Some(t(1)),
                ..full.clone()
            },
            glucose_readings(),
            None,
        ),
        (
            "revoked",
            Grant {
                revoked_at: Some(t(-1)),
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "revoked this instant",
            Grant {
                revoked_at: Some(t(0)),
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "created later",
            Grant {
                created_at: t(1),
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "wrong patient",
            Grant {
                patient_id: id(OTHER_PATIENT),
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "another team",
            grant(
                Grantee::CareTeam(id(OTHER_TEAM)),
                &[Glucose],
                &[ViewReadings],
            ),
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "another organization",
            grant(Grantee::Organization(id(31)), &[Glucose], &[ViewReadings]),
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "another user",
            grant(Grantee::User(id(11)), &[Glucose], &[ViewReadings]),
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
        (
            "other purpose",
            Grant {
                purpose: Purpose::Research,
                ..full.clone()
            },
            glucose_readings(),
            Some(DenyReason::NoGrant),
        ),
    ];
    for (name, grant, request, expected) in cases {
        let decision = decide(&clinician(), &request, std::slice::from_ref(&grant), &[]);
        match expected {
            None => assert_eq!(
                decision.allowance().map(|a| a.basis),
                Some(Basis::Grant(grant.id)),
                "{name}"
            ),
            Some(reason) => assert_eq!(decision, Decision::Deny(reason), "{name}"),
        }
    }
}

#[test]
fn window_and_trends_only_limits_are_returned() {
    use Access::*;
    let windowed = Grant {
        data_since: Some(t(-24)),
        ..grant(
            Grantee::CareTeam(id(TEAM)),
            &[DataCategory::Glucose],
            &[ViewTrends],
        )
    };
    let a = decide(
        &clinician(),
        &ask(DataCategory::Glucose, ViewTrends),
        &[windowed],
        &[],
    )
    .allowance()
    .copied()
    .expect("trends");
    assert_eq!(a.data_since, Some(t(-24)));
    assert!(
        !a.individual_readings,
        "a trends-only grant never reveals individual readings"
    );
}

#[test]
fn the_most_permissive_active_grant_wins() {
    use Access::*;
    let team = Grantee::CareTeam(id(TEAM));
    let trends = Grant {
        id: id(101),
        ..grant(team, &[DataCategory::Glucose], &[ViewTrends])
    };
    let narrow = Grant {
        id: id(102),
        data_since: Some(t(-5)),
        ..grant(team, &[DataCategory::Glucose], &[ViewReadings])
    };
    let wide = Grant {
        id: id(103),
        data_since: Some(t(-50)),
        ..grant(team, &[DataCategory::Glucose], &[ViewReadings])
    };
    let a = decide(
        &clinician(),
        &ask(DataCategory::Glucose, ViewTrends),
        &[trends, narrow, wide],
        &[],
    )
    .allowance()
    .copied()
    .expect("allowed");
    assert_eq!(a.basis, Basis::Grant(id(103)));
    assert!(a.individual_readings);
}

#[test]
fn research_is_deidentified_and_admins_see_nothing() {
    let researcher = Principal {
        user_id: id(60),
        role: Some(Role::Researcher),
        ..Principal::default()
    };
    let g = Grant {
        purpose: Purpose::Research,
        ..grant(
            Grantee::User(id(60)),
            &[DataCategory::Glucose],
            &[Access::ViewReadings],
        )
    };
    let a = decide(
        &researcher,
        &glucose_readings(),
        std::slice::from_ref(&g),
        &[],
    )
    .allowance()
    .copied()
    .expect("research grant");
    assert!(a.deidentified);
    let care = Grant {
        purpose: Purpose::Care,
        ..g.clone()
    };
    assert_eq!(
        decide(&researcher, &glucose_readings(), &[care], &[]),
        Decision::Deny(DenyReason::NoGrant),
        "a researcher reads for research only"
    );
    let admin = Principal {
        user_id: id(60),
        role: Some(Role::Admin),
        ..Principal::default()
    };
    assert_eq!(
        decide(&admin, &glucose_readings(), &[g], &[]),
        Decision::Deny(DenyReason::NoPurpose)
    );
}

#[test]
fn emergency_access_is_time_limited_and_for_clinicians_viewing_only() {
    let emergency = EmergencyAccess {
        id: id(900),
        patient_id: id(PATIENT),
        clinician_id: id(CLINICIAN),
        reason: "unconscious in the emergency department".into(),
        opened_at: t(-1),
        expires_at: t(1),
    };
    let e = std::slice::from_ref(&emergency);
    assert_eq!(
        decide(&clinician(), &glucose_readings(), &[], e)
            .allowance()
            .map(|a| a.basis),
        Some(Basis::Emergency(id(900)))
    );
    let later = AccessRequest {
        at: t(1),
        ..glucose_readings()
    };
    assert_eq!(
        decide(&clinician(), &later, &[], e),
        Decision::Deny(DenyReason::NoGrant)
    );
    assert!(
        decide(
            &clinician(),
            &ask(DataCategory::Glucose, Access::Export),
            &[],
            e
        )
        .allowance()
        .is_none()
    );
    let other = AccessRequest {
        patient_id: id(OTHER_PATIENT),
        ..glucose_readings()
    };
    assert!(decide(&clinician(), &other, &[], e).allowance().is_none());
    let caregiver = Principal {
        role: Some(Role::Caregiver),
        ..clinician()
    };
    assert!(
        decide(&caregiver, &glucose_readings(), &[], e)
            .allowance()
            .is_none()
    );
}

#[test]
fn grant_validation() {
    let cats: BTreeSet<_> = [DataCategory::Glucose].into();
    let acc: BTreeSet<_> = [Access::ViewReadings].into();
    assert_eq!(
        validate_new_grant(&BTreeSet::new(), &acc, None, t(0)),
        Err(InvalidGrant::NoCategory)
    );
    assert_eq!(
        validate_new_grant(&cats, &BTreeSet::new(), None, t(0)),
        Err(InvalidGrant::NoAccess)
    );
    assert_eq!(
        validate_new_grant(&cats, &acc, Some(t(0)), t(0)),
        Err(InvalidGrant::ExpiryInPast)
    );
    assert_eq!(validate_new_grant(&cats, &acc, Some(t(1)), t(0)), Ok(()));
}

fn any_grant() -> impl Strategy<Value = Grant> {
    let grantee = prop_oneof![
        (0u128..3).prop_map(|n| Grantee::User(id(CLINICIAN + n))),
        (0u128..3).prop_map(|n| Grantee::CareTeam(id(TEAM + n))),
        (0u128..3).prop_map(|n| Grantee::Organization(id(ORG + n))),
    ];
    (
        grantee,
        proptest::sample::subsequence(DataCategory::ALL.to_vec(), 0..=DataCategory::ALL.len()),
        proptest::sample::subsequence(Access::ALL.to_vec(), 0..=4),
        proptest::sample::select(Purpose::ALL.to_vec()),
        proptest::option::of(-100i64..100),
        proptest::option::of(-100i64..100),
        proptest::option::of(-100i64..100),
        (PATIENT..=OTHER_PATIENT),
        any::<u128>(),
    )
        .prop_map(
            |(grantee, cats, access, purpose, since, expires, revoked, patient, gid)| Grant {
                id: id(gid),
                patient_id: id(patient),
                grantee,
                categories: cats.into_iter().collect(),
                access: access.into_iter().collect(),
                purpose,
                data_since: since.map(t),
                expires_at: expires.map(t),
                revoked_at: revoked.map(t),
                created_at: t(-200),
            },
        )
}

proptest! {
    /// Whatever the grants, an allowance always rests on one active grant that names this
    /// patient, this principal, this category, this purpose and an access covering the request,
    /// and it carries that grant's window.
    #[test]
    fn every_allowance_rests_on_a_matching_active_grant(
        grants in proptest::collection::vec(any_grant(), 0..6),
        category in proptest::sample::select(DataCategory::ALL.to_vec()),
        access in proptest::sample::select(Access::ALL.to_vec()),
    ) {
        let request = ask(category, access);
        if let Decision::Allow(a) = decide(&clinician(), &request, &grants, &[]) {
            let Basis::Grant(gid) = a.basis else { panic!("a clinician without emergency access can only be allowed by a grant") };
            let g = grants.iter().find(|g| g.id == gid).expect("the basis is one of the grants");
            prop_assert!(g.is_active(request.at));
            prop_assert_eq!(g.patient_id, request.patient_id);
            prop_assert!(clinician().is(g.grantee));
            prop_assert!(g.categories.contains(&category));
            prop_assert_eq!(g.purpose, Purpose::Care);
            prop_assert!(g.allows(access));
            prop_assert_eq!(a.data_since, g.data_since);
            prop_assert_eq!(a.individual_readings, g.access.contains(&Access::ViewReadings));
        }
    }

    /// Revoking any grant never widens access.
    #[test]
    fn revoking_never_widens_access(grants in proptest::collection::vec(any_grant(), 1..6), which in any::<prop::sample::Index>()) {
        let request = glucose_readings();
        let before = decide(&clinician(), &request, &grants, &[]);
        let mut after_grants = grants.clone();
        let i = which.index(after_grants.len());
        after_grants[i].revoked_at = Some(t(-1));
        let after = decide(&clinician(), &request, &after_grants, &[]);
        if before.allowance().is_none() {
            prop_assert!(after.allowance().is_none());
        }
    }
}

#[test]
fn allowances_carry_the_limits_of_their_grant() {
    let windowed = Grant {
        data_since: Some(t(-24)),
        ..grant(
            Grantee::CareTeam(id(TEAM)),
            &[DataCategory::Glucose],
            &[Access::ViewReadings],
        )
    };
    let decision = decide(&clinician(), &glucose_readings(), &[windowed], &[]);
    let allowance = decision.allowance().expect("allowed");
    assert!(allowance.individual_readings);
    assert_eq!(allowance.clamp_from(None), Some(t(-24)));
    assert_eq!(
        allowance.clamp_from(Some(t(-48))),
        Some(t(-24)),
        "a grant window is never widened by the caller"
    );
    assert_eq!(allowance.clamp_from(Some(t(-2))), Some(t(-2)));
    let trends = grant(
        Grantee::CareTeam(id(TEAM)),
        &[DataCategory::Glucose],
        &[Access::ViewTrends],
    );
    let decision = decide(
        &clinician(),
        &ask(DataCategory::Glucose, Access::ViewTrends),
        &[trends],
        &[],
    );
    assert!(
        !decision.allowance().expect("trends").individual_readings,
        "trends-only never opens individual readings"
    );
    assert_eq!(
        decide(&clinician(), &glucose_readings(), &[], &[]),
        Decision::Deny(DenyReason::NoGrant)
    );
}

#[test]
fn only_the_patient_and_their_guardian_act_as_the_patient() {
    let patient = Principal {
        user_id: id(50),
        role: Some(Role::Patient),
        patient_id: Some(id(PATIENT)),
        ..Principal::default()
    };
    assert_eq!(acting_basis(&patient, id(PATIENT)), Ok(Basis::Own));
    assert_eq!(
        acting_basis(&patient, id(OTHER_PATIENT)),
        Err(DenyReason::NoGrant)
    );
    let guardian = Principal {
        user_id: id(51),
        role: Some(Role::Caregiver),
        guardian_of: vec![id(PATIENT)],
        ..Principal::default()
    };
    assert_eq!(acting_basis(&guardian, id(PATIENT)), Ok(Basis::Guardian));
    let full_grant = grant(Grantee::User(id(CLINICIAN)), DataCategory::ALL, Access::ALL);
    assert!(
        decide(&clinician(), &glucose_readings(), &[full_grant], &[])
            .allowance()
            .is_some()
    );
    assert_eq!(
        acting_basis(&clinician(), id(PATIENT)),
        Err(DenyReason::NoGrant),
        "no grant makes anyone the patient"
    );
}

#[test]
fn a_research_grant_never_serves_identified_reads() {
    let researcher = Principal {
        user_id: id(60),
        role: Some(Role::Researcher),
        ..Principal::default()
    };
    let g = Grant {
        purpose: Purpose::Research,
        ..grant(
            Grantee::User(id(60)),
            &[DataCategory::Glucose],
            &[Access::ViewReadings],
        )
    };
    let identified = AccessRequest {
        identified: true,
        ..glucose_readings()
    };
    assert_eq!(
        decide(&researcher, &identified, std::slice::from_ref(&g), &[]),
        Decision::Deny(DenyReason::DeidentifiedOnly)
    );
    let care = grant(
        Grantee::CareTeam(id(TEAM)),
        &[DataCategory::Glucose],
        &[Access::ViewReadings],
    );
    let identified_care = AccessRequest {
        identified: true,
        ..glucose_readings()
    };
    assert!(
        decide(&clinician(), &identified_care, &[care], &[])
            .allowance()
            .is_some()
    );
}

#[test]
fn research_shifts_are_never_whole_days_and_times_are_rounded_to_the_minute() {
    for draw in [0.0, 1e-9, 0.25, 0.5, 0.999_999, 1.0] {
        let shift = deidentify::shift_seconds(draw);
        assert!(
            deidentify::SHIFT_RANGE_SECONDS.contains(&shift),
            "{draw}: {shift}"
        );
        let into_day = shift % 86_400;
        assert!(
            (1800..=84_600).contains(&into_day),
            "{draw}: {shift} is {into_day} s into a day"
        );
    }
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T08:30:17.250Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let shifted = deidentify::shifted(at, 40 * 86_400 + 3_700);
    assert_eq!(shifted.to_rfc3339(), "2026-01-20T07:28:00+00:00");
    let base = chrono::Duration::days(14);
    assert_eq!(deidentify::holdback(base, 0.0), base);
    assert_eq!(deidentify::holdback(base, 1.0), chrono::Duration::days(21));
    assert_eq!(
        deidentify::holdback(chrono::Duration::zero(), 0.7),
        chrono::Duration::zero()
    );
}

#[test]
fn pseudonyms_are_stable_per_study() {
    let (study, other_study) = (id(700), id(701));
    let p = id(PATIENT);
    assert_eq!(
        deidentify::pseudonym(study, p.as_bytes()),
        deidentify::pseudonym(study, p.as_bytes())
    );
    assert_ne!(
        deidentify::pseudonym(study, p.as_bytes()),
        deidentify::pseudonym(other_study, p.as_bytes())
    );
    assert_ne!(deidentify::pseudonym(study, p.as_bytes()), p);
}

#[test]
fn organization_webhooks_receive_alerts_only_through_a_care_grant_allowing_it() {
    use Access::*;
    use DataCategory::*;
    let receives = |g: Grant, category: DataCategory| {
        organization_receives_alerts(
            id(ORG),
            &[id(TEAM)],
            id(PATIENT),
            category,
            t(0),
            std::slice::from_ref(&g),
            t(0),
        )
        .is_some()
    };
    let org = Grantee::Organization(id(ORG));
    let team = Grantee::CareTeam(id(TEAM));
    // (what, grant, category, receives?)
    let cases: Vec<(&str, Grant, DataCategory, bool)> = vec![
        (
            "to the organization",
            grant(org, &[Glucose], &[ReceiveAlerts]),
            Glucose,
            true,
        ),
        (
            "to one of its teams",
            grant(team, &[Glucose], &[ReceiveAlerts]),
            Glucose,
            true,
        ),
        (
            "another organization's team",
            grant(
                Grantee::CareTeam(id(OTHER_TEAM)),
                &[Glucose],
                &[ReceiveAlerts],
            ),
            Glucose,
            false,
        ),
        (
            "to a user",
            grant(Grantee::User(id(CLINICIAN)), &[Glucose], &[ReceiveAlerts]),
            Glucose,
            false,
        ),
        (
            "wrong category",
            grant(org, &[Glucose], &[ReceiveAlerts]),
            BloodPressure,
            false,
        ),
        (
            "readings, not alerts",
            grant(org, &[Glucose], &[ViewReadings]),
            Glucose,
            false,
        ),
        (
            "revoked",
            Grant {
                revoked_at: Some(t(-1)),
                ..grant(org, &[Glucose], &[ReceiveAlerts])
            },
            Glucose,
            false,
        ),
        (
            "expired",
            Grant {
                expires_at: Some(t(0)),
                ..grant(org, &[Glucose], &[ReceiveAlerts])
            },
            Glucose,
            false,
        ),
        (
            "research",
            Grant {
                purpose: Purpose::Research,
                ..grant(org, &[Glucose], &[ReceiveAlerts])
            },
            Glucose,
            false,
        ),
        (
            "data before the window",
            Grant {
                data_since: Some(t(1)),
                ..grant(org, &[Glucose], &[ReceiveAlerts])
            },
            Glucose,
            false,
        ),
    ];
    for (what, g, category, expected) in cases {
        assert_eq!(receives(g, category), expected, "{what}");
    }
}

#[test]
fn a_share_link_reads_only_through_its_own_grant() {
    const LINK: u128 = 40;
    let link_grant = |access: &[Access]| Grant {
        purpose: Purpose::Caregiving,
        ..grant(
            Grantee::ShareLink(id(LINK)),
            &[DataCategory::Glucose],
            access,
        )
    };
    let holder = Principal::share_link(id(LINK));
    // Nothing without a grant naming the link.
    assert_eq!(
        decide(&holder, &glucose_readings(), &[], &[]),
        Decision::Deny(DenyReason::NoGrant)
    );
    let allowed = decide(
        &holder,
        &glucose_readings(),
        &[link_grant(&[Access::ViewReadings])],
        &[],
    );
    assert_eq!(
        allowed
            .allowance()
            .map(|a| (a.basis, a.individual_readings)),
        Some((Basis::Grant(id(100)), true))
    );
    // Trends only: no individual readings, the trend yes.
    let trends = [link_grant(&[Access::ViewTrends])];
    assert_eq!(
        decide(&holder, &glucose_readings(), &trends, &[]),
        Decision::Deny(DenyReason::AccessNotGranted)
    );
    assert!(
        decide(
            &holder,
            &ask(DataCategory::Glucose, Access::ViewTrends),
            &trends,
            &[]
        )
        .allowance()
        .is_some()
    );
    // Revoked: nothing from then on.
    let revoked = Grant {
        revoked_at: Some(t(-1)),
        ..link_grant(&[Access::ViewReadings])
    };
    assert_eq!(
        decide(&holder, &glucose_readings(), &[revoked], &[]),
        Decision::Deny(DenyReason::NoGrant)
    );
    // A link is not the user of the same id, nor a user the link.
    let user_grant = Grant {
        purpose: Purpose::Caregiving,
        ..grant(
            Grantee::User(id(LINK)),
            &[DataCategory::Glucose],
            &[Access::ViewReadings],
        )
    };
    assert!(
        decide(&holder, &glucose_readings(), &[user_grant], &[])
            .allowance()
            .is_none()
    );
    let caregiver = Principal {
        user_id: id(LINK),
        role: Some(Role::Caregiver),
        ..Principal::default()
    };
    assert!(
        decide(
            &caregiver,
            &glucose_readings(),
            &[link_grant(&[Access::ViewReadings])],
            &[]
        )
        .allowance()
        .is_none()
    );
}

#[test]
fn acknowledgements_are_the_familys_or_each_grants_own() {
    let allowance = |basis, purpose| Allowance {
        basis,
        purpose,
        data_since: None,
        individual_readings: true,
        deidentified: false,
    };
    let cases = [
        (Basis::Own, None, Some(AcknowledgementHolder::Family)),
        (Basis::Guardian, None, Some(AcknowledgementHolder::Family)),
        (
            Basis::Grant(id(1)),
            Some(Purpose::Caregiving),
            Some(AcknowledgementHolder::Grant(id(1))),
        ),
        (
            Basis::Grant(id(2)),
            Some(Purpose::PeerSupport),
            Some(AcknowledgementHolder::Grant(id(2))),
        ),
        // The care team's acknowledgement is the alert's own.
        (Basis::Grant(id(3)), Some(Purpose::Care), None),
        (Basis::Emergency(id(4)), Some(Purpose::Care), None),
    ];
    for (basis, purpose, holder) in cases {
        assert_eq!(
            allowance(basis, purpose).acknowledgement_holder(),
            holder,
            "{basis:?} {purpose:?}"
        );
    }
    assert_eq!(AcknowledgementHolder::Family.grant_id(), None);
    assert_eq!(AcknowledgementHolder::Grant(id(5)).grant_id(), Some(id(5)));
}
