//! The lifecycle against stored state, including that a second evaluation of the same data
//! changes nothing.

use super::*;
use crate::alerts::RuleId;
use crate::alerts::rules::{DeviceActivity, GlucosePoint, glucose_timelines, silent_devices};
use crate::alerts::thresholds::AlertThresholds;
use crate::device::DeviceKind;
use crate::reading::GlucoseSource;
use crate::sharing::DataCategory;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::minutes(minute)
}

/// CGM readings every 5 minutes from `start`, received `delay` after measurement.
fn cgm(start: i64, values: &[f64], delay: Duration) -> Vec<GlucosePoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| GlucosePoint {
            device_id: "cgm".into(),
            measured_at: at(start + 5 * i as i64),
            received_at: at(start + 5 * i as i64) + delay,
            value_mg_dl: *v,
            source: GlucoseSource::Cgm,
            flag: None,
        })
        .collect()
}

fn live(start: i64, values: &[f64]) -> Vec<GlucosePoint> {
    cgm(start, values, Duration::seconds(3))
}

fn timeline(points: &[GlucosePoint], rule: RuleId) -> Timeline {
    glucose_timelines(points, &AlertThresholds::default())
        .into_iter()
        .find(|t| t.rule == rule)
        .expect("rule")
}

const LATE: Duration = Duration::minutes(15);

/// Every test's timeline covers everything from here on.
fn window() -> DateTime<Utc> {
    at(-180)
}

/// What storage would hold after applying `changes` to `known`.
fn apply(known: Option<KnownAlert>, changes: &[Change]) -> Option<KnownAlert> {
    let mut known = known;
    for change in changes {
        match change {
            Change::Open(new) => {
                known = Some(KnownAlert {
                    id: Uuid::new_v4(),
                    status: AlertStatus::Open,
                    severity: new.severity,
                    triggered_at: new.triggered_at,
                    last_seen_at: new.last_seen_at,
                    cleared_since: new.cleared_since,
                    trigger_count: new.trigger_count,
                    floor: known.as_ref().map(|k| k.last_seen_at),
                })
            }
            Change::Update(u) => {
                let a = known.as_mut().expect("an alert to update");
                assert_eq!(a.id, u.alert_id);
                a.trigger_count += u.retriggers;
                if let Some(s) = u.escalate_to {
                    a.severity = s;
                }
                if let Some(t) = u.triggered_at {
                    a.triggered_at = t;
                }
                if let Some(t) = u.last_seen_at {
                    a.last_seen_at = t;
                }
                if let Some(c) = u.cleared_since {
                    a.cleared_since = c;
                }
                if u.reopen {
                    a.status = AlertStatus::Open;
                }
            }
            Change::Historical(_) => {}
        }
    }
    known
}

/// Reconciles, applies, and checks that a second run on the same data changes nothing.
fn step(
    points: &[GlucosePoint],
    rule: RuleId,
    known: Option<KnownAlert>,
) -> (Vec<Change>, Option<KnownAlert>) {
    let tl = timeline(points, rule);
    let changes = reconcile(&tl, known.as_ref(), LATE, window());
    let after = apply(known, &changes);
    let again: Vec<Change> = reconcile(&tl, after.as_ref(), LATE, window())
        .into_iter()
        .filter(|c| !matches!(c, Change::Historical(_)))
        .collect();
    assert_eq!(again, Vec::new(), "a second evaluation changes nothing");
    (changes, after)
}

#[test]
fn a_live_episode_opens_one_alert_and_a_second_evaluation_changes_nothing() {
    let points = live(0, &[80.0, 50.0, 52.0, 60.0]);
    let (changes, known) = step(&points, RuleId::GlucoseVeryLow, None);
    let [Change::Open(new)] = changes.as_slice() else {
        panic!("expected one opening: {changes:?}");
    };
    assert_eq!(new.triggered_at, at(5));
    assert_eq!(new.trigger.evidence.value_mg_dl, Some(50.0));
    assert_eq!(new.severity, Severity::Urgent);
    assert_eq!(
        (new.last_seen_at, new.cleared_since),
        (at(10), Some(at(15)))
    );
    assert_eq!(known.expect("alert").trigger_count, 1);
}

#[test]
fn the_condition_returning_after_a_clear_retriggers_the_alert() {
    let first = live(0, &[50.0, 60.0]);
    let (_, known) = step(&first, RuleId::GlucoseVeryLow, None);
    let mut acknowledged = known.expect("alert");
    acknowledged.status = AlertStatus::Acknowledged;
    let mut more = first.clone();
    more.extend(live(10, &[70.0, 51.0, 49.0]));
    let (changes, known) = step(&more, RuleId::GlucoseVeryLow, Some(acknowledged));
    let [Change::Update(u)] = changes.as_slice() else {
        panic!("expected an update: {changes:?}");
    };
    assert_eq!(u.retriggers, 1);
    assert_eq!(u.retrigger.as_ref().map(|f| f.at), Some(at(15)));
    assert_eq!(u.cleared_since, Some(None), "holds again");
    assert!(u.reopen, "an acknowledged alert needs attention again");
    let known = known.expect("alert");
    assert_eq!((known.trigger_count, known.last_seen_at), (2, at(20)));
    assert_eq!(known.status, AlertStatus::Open);
}

#[test]
fn a_continuing_episode_updates_last_seen_without_a_retrigger() {
    let (_, known) = step(&live(0, &[50.0]), RuleId::GlucoseVeryLow, None);
    let (changes, known) = step(&live(0, &[50.0, 48.0, 47.0]), RuleId::GlucoseVeryLow, known);
    let [Change::Update(u)] = changes.as_slice() else {
        panic!("expected an update: {changes:?}");
    };
    assert!(!u.is_notable());
    assert_eq!(u.last_seen_at, Some(at(10)));
    assert_eq!(known.expect("alert").trigger_count, 1);
}

#[test]
fn late_data_is_history_never_a_live_alarm() {
    // Yesterday's readings synced now: received a day after they were measured.
    let backlog = cgm(0, &[100.0, 50.0, 48.0, 90.0], Duration::days(1));
    let (changes, known) = step(&backlog, RuleId::GlucoseVeryLow, None);
    assert_eq!(known, None, "no live alarm");
    let [Change::Historical(h)] = changes.as_slice() else {
        panic!("expected a historical event: {changes:?}");
    };
    assert_eq!((h.started_at, h.last_hold_at), (at(5), at(10)));
    // 15 minutes late is still live; a second later is not.
    let mut edge = cgm(0, &[50.0], LATE);
    assert!(matches!(
        step(&edge, RuleId::GlucoseVeryLow, None).0.as_slice(),
        [Change::Open(_)]
    ));
    edge[0].received_at += Duration::seconds(1);
    assert!(matches!(
        step(&edge, RuleId::GlucoseVeryLow, None).0.as_slice(),
        [Change::Historical(_)]
    ));
}

#[test]
fn a_live_reading_continuing_a_late_episode_raises_the_alarm_there() {
    let mut points = cgm(0, &[50.0, 49.0], Duration::hours(2));
    points.extend(live(10, &[48.0]));
    let (changes, _) = step(&points, RuleId::GlucoseVeryLow, None);
    let [Change::Open(new)] = changes.as_slice() else {
        panic!("expected one opening: {changes:?}");
    };
    assert_eq!(new.triggered_at, at(10));
}

#[test]
fn after_a_resolution_only_a_new_episode_opens_a_new_alert() {
    let (_, known) = step(&live(0, &[50.0]), RuleId::GlucoseVeryLow, None);
    let mut resolved = known.expect("alert");
    resolved.status = AlertStatus::Resolved;
    // The same episode continues: resolved by hand, it stays resolved.
    let (changes, _) = step(
        &live(0, &[50.0, 49.0]),
        RuleId::GlucoseVeryLow,
        Some(resolved.clone()),
    );
    assert_eq!(changes, Vec::new());
    // After a clear, a new episode is a new alert.
    let (changes, known) = step(
        &live(0, &[50.0, 49.0, 80.0, 45.0]),
        RuleId::GlucoseVeryLow,
        Some(resolved.clone()),
    );
    assert!(matches!(changes.as_slice(), [Change::Open(n)] if n.triggered_at == at(15)));
    assert_ne!(known.expect("alert").id, resolved.id);
}

#[test]
fn very_high_escalates_from_warning_to_urgent() {
    let mut values = vec![260.0; 12];
    let (changes, known) = step(&live(0, &values), RuleId::GlucoseVeryHigh, None);
    assert!(matches!(changes.as_slice(), [Change::Open(n)] if n.severity == Severity::Warning));
    values.push(410.0);
    let (changes, known) = step(&live(0, &values), RuleId::GlucoseVeryHigh, known);
    let [Change::Update(u)] = changes.as_slice() else {
        panic!("expected an update: {changes:?}");
    };
    assert_eq!((u.escalate_to, u.retriggers), (Some(Severity::Urgent), 0));
    assert!(u.is_notable());
    assert_eq!(known.expect("alert").severity, Severity::Urgent);
}

#[test]
fn auto_resolution_waits_for_the_clear_to_last() {
    let alert = KnownAlert {
        id: Uuid::new_v4(),
        status: AlertStatus::Acknowledged,
        severity: Severity::Urgent,
        triggered_at: at(0),
        last_seen_at: at(0),
        cleared_since: Some(at(5)),
        trigger_count: 1,
        floor: None,
    };
    let thirty = Duration::minutes(30);
    // (now, cleared since, status, due?)
    let cases = [
        (at(34), Some(at(5)), AlertStatus::Open, false),
        (at(35), Some(at(5)), AlertStatus::Open, true),
        (at(35), Some(at(5)), AlertStatus::Acknowledged, true),
        (at(99), None, AlertStatus::Open, false),
        (at(99), Some(at(5)), AlertStatus::Resolved, false),
    ];
    for (now, cleared_since, status, due) in cases {
        let a = KnownAlert {
            cleared_since,
            status,
            ..alert.clone()
        };
        assert_eq!(
            due_for_auto_resolve(&a, thirty, now),
            due,
            "{now} {cleared_since:?} {status}"
        );
    }
    assert!(due_for_auto_resolve(&alert, Duration::zero(), at(5)));
}

#[test]
fn no_data_opens_once_per_silence() {
    let t = AlertThresholds::default();
    let device = |last: i64| DeviceActivity {
        device_id: "cgm".into(),
        kind: DeviceKind::Cgm,
        last_measured_at: at(last),
    };
    let silent_at = |now: i64, last: i64| {
        silent_devices(&[device(last)], &t, at(now))
            .remove(&DataCategory::Glucose)
            .flatten()
    };
    assert_eq!(silent_at(29, 0), None);
    let finding = silent_at(30, 0).expect("silent");
    let Some(Change::Open(new)) = reconcile_no_data(Some(&finding), None, at(30)) else {
        panic!("expected an opening");
    };
    assert_eq!((new.triggered_at, new.last_seen_at), (at(30), at(0)));
    let open = apply(None, &[Change::Open(new)]).expect("alert");
    assert_eq!(
        reconcile_no_data(Some(&finding), Some(&open), at(31)),
        None,
        "once"
    );
    // Resolved by hand while still silent: the same silence does not come back.
    let resolved = KnownAlert {
        status: AlertStatus::Resolved,
        ..open.clone()
    };
    assert_eq!(
        reconcile_no_data(silent_at(60, 0).as_ref(), Some(&resolved), at(60)),
        None
    );
    // The device sends again: clear since now; silent again later: re-triggered.
    let Some(cleared @ Change::Update(_)) = reconcile_no_data(None, Some(&open), at(40)) else {
        panic!("expected a clear");
    };
    let cleared = apply(Some(open), &[cleared]).expect("alert");
    assert_eq!(cleared.cleared_since, Some(at(40)));
    let again = silent_at(80, 45).expect("silent again");
    let Some(Change::Update(u)) = reconcile_no_data(Some(&again), Some(&cleared), at(80)) else {
        panic!("expected a re-trigger");
    };
    assert_eq!((u.retriggers, u.cleared_since), (1, Some(None)));
    // A new silence after a resolution opens a new alert.
    let resolved = KnownAlert {
        status: AlertStatus::Resolved,
        ..cleared
    };
    assert!(matches!(
        reconcile_no_data(Some(&again), Some(&resolved), at(80)),
        Some(Change::Open(_))
    ));
}

#[test]
fn manual_transitions() {
    use AlertStatus::*;
    // (from, acknowledge, resolve)
    let cases = [
        (Open, Ok(Acknowledged), Ok(Resolved)),
        (Acknowledged, Err(()), Ok(Resolved)),
        (Resolved, Err(()), Err(())),
    ];
    for (from, ack, res) in cases {
        assert_eq!(acknowledge(from).map_err(|_| ()), ack, "acknowledge {from}");
        assert_eq!(resolve(from).map_err(|_| ()), res, "resolve {from}");
    }
    for status in AlertStatus::ALL {
        assert_eq!(AlertStatus::parse(status.as_str()), Some(*status));
    }
    for kind in EventKind::ALL {
        assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
    }
}

#[test]
fn the_count_does_not_depend_on_the_order_readings_arrive_in() {
    // Two episodes: [50, 52] cleared by 58, [48, 47] cleared by 56, readings 2 minutes apart.
    let all = live(0, &[60.0, 50.0, 52.0, 58.0, 48.0, 47.0, 56.0]);
    let by_minute = |minutes: &[i64]| -> Vec<GlucosePoint> {
        all.iter()
            .filter(|p| minutes.iter().any(|m| p.measured_at == at(*m)))
            .cloned()
            .collect()
    };
    // In order, in one piece.
    let (_, in_order) = step(&all, RuleId::GlucoseVeryLow, None);
    let in_order = in_order.expect("alert");
    assert_eq!((in_order.trigger_count, in_order.triggered_at), (2, at(5)));
    // The second episode first (another server had it), then the rest.
    let (_, first) = step(&by_minute(&[20, 25, 30]), RuleId::GlucoseVeryLow, None);
    assert_eq!(first.as_ref().map(|a| a.trigger_count), Some(1));
    let (_, after) = step(&all, RuleId::GlucoseVeryLow, first);
    let after = after.expect("alert");
    assert_eq!(
        (after.trigger_count, after.triggered_at, after.last_seen_at),
        (2, at(5), at(25))
    );
    // The clear between the episodes arriving last.
    let (_, merged) = step(
        &by_minute(&[0, 5, 10, 20, 25, 30]),
        RuleId::GlucoseVeryLow,
        None,
    );
    assert_eq!(
        merged.as_ref().map(|a| a.trigger_count),
        Some(1),
        "one episode so far"
    );
    let (_, split) = step(&all, RuleId::GlucoseVeryLow, merged);
    assert_eq!(split.map(|a| a.trigger_count), Some(2));
}
