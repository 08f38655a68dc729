//! Trend rollups against a real PostgreSQL: on random data, the days read through the rollups
//! (with the queue's stale days computed from raw readings) equal the days computed from the
//! raw readings alone, exactly — before the trends consumer ran, after it caught up, after a
//! late backfill, after a zone change and a targets change, and through a grant's window.
//! The panel's totals (summed in SQL) equal the raw days' totals too.

use chronicle_domain::reading::{GlucoseMgDl, GlucoseReading, GlucoseSource};
use chronicle_domain::sharing::{
    Access, AccessAction, AccessRequest, DataCategory, Grantee, Principal, Purpose, Role,
};
use chronicle_domain::targets::{GlucoseTargets, TargetPreset};
use chronicle_domain::trends::{BpTotals, GlucoseTotals, TrendWindow, local_date, sum_totals};
use chronicle_domain::units::GlucoseUnit;
use chronicle_domain::{BloodPressureReading, DeviceKind, Diastolic, Pulse, Reading, Systolic};
use chronicle_storage::gate::Permit;
use chronicle_storage::readings::{BatchWrite, ReadingRow};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::trends::{DaySource, TRENDS_CONSUMER, TrendDays};
use chronicle_storage::{NewPatient, Store};
use chronicle_tests::TestDatabase;
use chrono::{DateTime, Days, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

const ZONES: [&str; 4] = ["Europe/Berlin", "America/New_York", "Asia/Kathmandu", "UTC"];

#[derive(Debug, Clone)]
struct Burst {
    /// Minutes before "now" the burst starts.
    start_minutes_ago: i64,
    /// (step in seconds, value in mg/dL, from the meter rather than the CGM)
    glucose: Vec<(i64, f64, bool)>,
    /// (step in minutes, systolic, diastolic, pulse)
    blood_pressure: Vec<(i64, u16, u16, Option<u16>)>,
}

#[derive(Debug, Clone)]
struct Case {
    zone: &'static str,
    first: Burst,
    /// A late backfill: older readings arriving after the rollups caught up, often between
    /// the first burst's readings (starting this many minutes after its start).
    backfill: Burst,
    new_zone: &'static str,
    pregnancy_targets: bool,
    /// The grant's `data_since`, in minutes before now.
    since_minutes_ago: Option<i64>,
}

fn burst() -> impl Strategy<Value = Burst> {
    let value = prop_oneof![
        prop::sample::select(vec![53.9, 54.0, 69.9, 70.0, 180.0, 180.1, 250.0, 250.1]),
        (2.5f64..22.0).prop_map(|m| GlucoseUnit::MmolL.to_mg_dl((m * 10.0).round() / 10.0)),
        (40u32..400).prop_map(f64::from),
    ];
    (
        // Bursts start anywhere in the last 40 days (which hold daylight-saving changes of
        // Europe and North America in late October and early November).
        0i64..40 * 24 * 60,
        prop::collection::vec((0i64..1500, value, prop::bool::weighted(0.1)), 0..250),
        prop::collection::vec(
            (
                1i64..900,
                90u16..200,
                40u16..89,
                prop::option::of(40u16..120),
            ),
            0..20,
        ),
    )
        .prop_map(|(start_minutes_ago, glucose, blood_pressure)| Burst {
            start_minutes_ago,
            glucose,
            blood_pressure,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(ZONES.to_vec()),
        burst(),
        burst(),
        prop::option::weighted(0.7, 0i64..600),
        prop::sample::select(ZONES.to_vec()),
        any::<bool>(),
        prop::option::of(0i64..30 * 24 * 60),
    )
        .prop_map(
            |(zone, first, mut backfill, within, new_zone, pregnancy_targets, since)| {
                if let Some(offset) = within {
                    backfill.start_minutes_ago = (first.start_minutes_ago - offset).max(0);
                }
                Case {
                    zone,
                    first,
                    backfill,
                    new_zone,
                    pregnancy_targets,
                    since_minutes_ago: since,
                }
            },
        )
}

struct Patient {
    id: Uuid,
    cgm: String,
    meter: String,
    cuff: String,
    principal: Principal,
}

fn readings(burst: &Burst, now: DateTime<Utc>) -> Vec<(bool, Reading)> {
    let mut out = Vec::new();
    let mut at = now - Duration::minutes(burst.start_minutes_ago);
    for (step, value, meter) in &burst.glucose {
        at += Duration::seconds(*step);
        if at > now {
            break;
        }
        out.push((
            *meter,
            Reading::Glucose(GlucoseReading {
                measured_at: at,
                utc_offset_minutes: 0,
                value: GlucoseMgDl::new(*value).expect("plausible"),
                original_value: Some(*value),
                original_unit: GlucoseUnit::MgDl,
                source: if *meter {
                    GlucoseSource::Meter
                } else {
                    GlucoseSource::Cgm
                },
                flag: None,
                device_reading_id: None,
            }),
        ));
    }
    let mut at = now - Duration::minutes(burst.start_minutes_ago);
    for (step, systolic, diastolic, pulse) in &burst.blood_pressure {
        at += Duration::minutes(*step);
        if at > now {
            break;
        }
        out.push((
            false,
            Reading::BloodPressure(BloodPressureReading {
                measured_at: at,
                utc_offset_minutes: 0,
                systolic: Systolic::new(*systolic).expect("plausible"),
                diastolic: Diastolic::new(*diastolic).expect("plausible"),
                pulse: pulse.and_then(Pulse::new),
                device_reading_id: None,
            }),
        ));
    }
    out
}

async fn store_burst(store: &Store, patient: &Patient, burst: &Burst, now: DateTime<Utc>) {
    store_readings(store, patient, &readings(burst, now)).await;
}

/// Stores `readings` (from the meter where flagged) in one batch.
async fn store_readings(store: &Store, patient: &Patient, readings: &[(bool, Reading)]) {
    let keys = store
        .devices_for_ingest(&[&patient.cgm, &patient.meter, &patient.cuff])
        .await
        .expect("devices");
    let rows: Vec<ReadingRow<'_>> = readings
        .iter()
        .map(|(meter, reading)| {
            let device_id = match reading {
                Reading::BloodPressure(_) => &patient.cuff,
                Reading::Glucose(_) if *meter => &patient.meter,
                Reading::Glucose(_) | Reading::Treatment(_) => &patient.cgm,
            };
            ReadingRow {
                device_key: keys[device_id.as_str()].key,
                patient_id: patient.id,
                reading,
            }
        })
        .collect();
    store
        .write_batch(&BatchWrite {
            readings: rows,
            rejections: Vec::new(),
            followup_consumers: &[TRENDS_CONSUMER],
        })
        .await
        .expect("write");
}

/// Stores the burst's readings in time order, in batches of the sizes given (repeated), each
/// rolled up before the next with claims of `catch_up_each` items if given; returns the days
/// those rounds continued.
async fn store_in_order(
    store: &Store,
    patient: &Patient,
    burst: &Burst,
    now: DateTime<Utc>,
    batch_sizes: &[usize],
    catch_up_each: Option<i64>,
) -> usize {
    let mut readings = readings(burst, now);
    readings.sort_by_key(|(_, reading)| reading.measured_at());
    let mut continued = 0;
    let mut rest = readings.as_slice();
    for size in batch_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at((*size).min(rest.len()));
        store_readings(store, patient, batch).await;
        if let Some(limit) = catch_up_each {
            continued += catch_up_by(store, limit).await;
        }
        rest = after;
    }
    continued
}

/// Runs the trends consumer until nothing waits; returns the days it continued.
async fn catch_up(store: &Store) -> usize {
    catch_up_by(store, 50).await
}

/// [`catch_up`] with claims of about `limit` items.
async fn catch_up_by(store: &Store, limit: i64) -> usize {
    let mut continued = 0;
    loop {
        let report = store.refresh_trends(limit).await.expect("refresh");
        continued += report.continued;
        if report.is_idle() {
            break;
        }
    }
    assert_eq!(
        store
            .pending_followups(TRENDS_CONSUMER)
            .await
            .expect("count"),
        0
    );
    continued
}

async fn permit(store: &Store, patient: &Patient, category: DataCategory) -> Permit {
    store
        .authorize(
            &patient.principal,
            AccessRequest {
                patient_id: patient.id,
                category,
                access: Access::ViewTrends,
                at: Utc::now(),
                identified: true,
            },
            AccessAction::ReadGlucoseTrend,
        )
        .await
        .expect("authorize")
        .expect("allowed")
}

/// Rollups and raw readings agree on every day of two windows, and the panel's totals equal
/// the raw days' totals.
async fn agree(store: &Store, patient: &Patient, stage: &str) -> Result<(), TestCaseError> {
    let now = Utc::now();
    let glucose = permit(store, patient, DataCategory::Glucose).await;
    let blood_pressure = permit(store, patient, DataCategory::BloodPressure).await;
    let today = now.date_naive();
    let windows = [
        TrendDays::Last(14),
        TrendDays::Between(today - Days::new(42), today + Days::new(1)),
    ];
    for days in windows {
        let (_, window, from_rollups) = store
            .glucose_trend_days(&glucose, days, now, DaySource::Rollups)
            .await
            .expect("rollups");
        let (_, raw_window, from_raw) = store
            .glucose_trend_days(&glucose, days, now, DaySource::Raw)
            .await
            .expect("raw");
        prop_assert_eq!(&window, &raw_window);
        prop_assert_eq!(&from_rollups, &from_raw, "{} glucose {:?}", stage, days);
        let (_, _, bp_rollups) = store
            .blood_pressure_trend_days(&blood_pressure, days, now, DaySource::Rollups)
            .await
            .expect("rollups");
        let (_, _, bp_raw) = store
            .blood_pressure_trend_days(&blood_pressure, days, now, DaySource::Raw)
            .await
            .expect("raw");
        prop_assert_eq!(&bp_rollups, &bp_raw, "{} blood pressure {:?}", stage, days);
    }

    let panel = store
        .panel(&patient.principal, 14, now, DaySource::Rollups)
        .await
        .expect("panel");
    let raw_panel = store
        .panel(&patient.principal, 14, now, DaySource::Raw)
        .await
        .expect("panel");
    let raw_glucose = raw_panel[0].glucose.as_ref().expect("glucose permitted");
    prop_assert_eq!(panel.len(), 1);
    let row = &panel[0];
    let g = row.glucose.as_ref().expect("glucose permitted");
    let zone = row.subject.time_zone;
    let local_today = local_date(zone, now);
    let raw_totals = |window: &TrendWindow| {
        let window = window.clone();
        async move {
            let (_, _, days) = store
                .glucose_trend_days(
                    &glucose,
                    TrendDays::Between(window.first_date(), window.last_date()),
                    now,
                    DaySource::Raw,
                )
                .await
                .expect("raw");
            sum_totals(&days)
        }
    };
    prop_assert_eq!(g.window.last_date(), local_today);
    let current: GlucoseTotals = raw_totals(&g.window).await;
    prop_assert_eq!(g.totals, current, "{} panel glucose", stage);
    prop_assert_eq!(raw_glucose.totals, current, "{} raw panel glucose", stage);
    let before = g
        .previous
        .as_ref()
        .expect("glucose compares with the period before");
    let previous: GlucoseTotals = raw_totals(&before.window).await;
    prop_assert_eq!(before.totals, previous, "{} panel previous glucose", stage);
    let b = row
        .blood_pressure
        .as_ref()
        .expect("blood pressure permitted");
    let (_, _, bp_days) = store
        .blood_pressure_trend_days(&blood_pressure, TrendDays::Last(14), now, DaySource::Raw)
        .await
        .expect("raw");
    let mut bp_totals = BpTotals::default();
    for d in &bp_days {
        bp_totals += &d.totals;
    }
    prop_assert_eq!(b.totals, bp_totals, "{} panel blood pressure", stage);

    // The latest readings: the last of every reading up to the end of today, in the order the
    // days keep them.
    let everything = TrendDays::Between(local_today - Days::new(45), local_today);
    let (_, _, days) = store
        .glucose_trend_days(&glucose, everything, now, DaySource::Raw)
        .await
        .expect("raw");
    let last_glucose = days.iter().rev().find_map(|d| d.latest());
    prop_assert_eq!(g.latest, last_glucose, "{} latest glucose", stage);
    prop_assert_eq!(
        raw_glucose.latest,
        last_glucose,
        "{} raw latest glucose",
        stage
    );
    let (_, _, days) = store
        .blood_pressure_trend_days(&blood_pressure, everything, now, DaySource::Raw)
        .await
        .expect("raw");
    let last_bp = days
        .iter()
        .rev()
        .find_map(|d| d.latest)
        .map(|(at, s, d)| (at, s as i16, d as i16));
    prop_assert_eq!(b.latest, last_bp, "{} latest blood pressure", stage);
    Ok(())
}

/// A patient of `case` with a CGM, a meter and a cuff, and a clinician's trends-only grant.
async fn set_up(store: &Store, case: &Case, now: DateTime<Utc>) -> Patient {
    let id = store
        .create_patient(&NewPatient {
            display_name: "Proptest".into(),
            time_zone: case.zone.into(),
        })
        .await
        .expect("patient")
        .id;
    let device = |kind| async move {
        store
            .create_device(id, kind, None)
            .await
            .expect("device")
            .0
            .id
            .as_str()
            .to_owned()
    };
    let clinician = Uuid::new_v4();
    let patient = Patient {
        id,
        cgm: device(DeviceKind::Cgm).await,
        meter: device(DeviceKind::Meter).await,
        cuff: device(DeviceKind::Bp).await,
        principal: Principal {
            user_id: clinician,
            role: Some(Role::Clinician),
            ..Principal::default()
        },
    };
    store
        .create_grant(&NewGrant {
            patient_id: id,
            grantee: Grantee::User(clinician),
            categories: [DataCategory::Glucose, DataCategory::BloodPressure].into(),
            access: [Access::ViewTrends].into(),
            purpose: Purpose::Care,
            data_since: case.since_minutes_ago.map(|m| now - Duration::minutes(m)),
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
    patient
}

async fn run_case(store: &Store, case: Case) -> Result<(), TestCaseError> {
    let now = Utc::now();
    let patient = set_up(store, &case, now).await;
    let id = patient.id;
    store_burst(store, &patient, &case.first, now).await;
    agree(store, &patient, "before the consumer ran").await?;
    catch_up(store).await;
    agree(store, &patient, "caught up").await?;

    store_burst(store, &patient, &case.backfill, now).await;
    agree(store, &patient, "late backfill queued").await?;
    catch_up(store).await;
    agree(store, &patient, "late backfill rolled up").await?;

    if case.pregnancy_targets {
        store
            .set_glucose_targets(id, &GlucoseTargets::preset(TargetPreset::Pregnancy), None)
            .await
            .expect("targets");
        agree(store, &patient, "targets changed").await?;
    }
    sqlx::query("UPDATE patients SET time_zone = $1 WHERE id = $2")
        .bind(case.new_zone)
        .bind(id)
        .execute(store.pool())
        .await
        .expect("zone change");
    agree(store, &patient, "zone changed").await?;
    catch_up(store).await;
    let stored_zones: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT time_zone FROM glucose_days WHERE patient_id = $1")
            .bind(id)
            .fetch_all(store.pool())
            .await
            .expect("zones");
    prop_assert!(
        stored_zones.iter().all(|z| z == case.new_zone),
        "{stored_zones:?}"
    );
    agree(store, &patient, "rebuilt").await
}

/// A runtime and a migrated store on a database of the test's own.
fn migrated_store() -> (tokio::runtime::Runtime, TestDatabase, Store) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(TestDatabase::create()).expect("database");
    let store = Store::from_pool(db.pool.clone());
    runtime.block_on(store.migrate()).expect("migrations");
    (runtime, db, store)
}

/// A property runner for `cases` random cases (each case is slow: a database round).
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn rollups_and_raw_readings_agree_exactly_on_random_data() {
    let (runtime, _db, store) = migrated_store();
    let mut runner = runner(24);
    runner
        .run(&case(), |case| runtime.block_on(run_case(&store, case)))
        .expect("rollups equal raw readings");
}

/// Several patients' readings in one claim of the trends consumer, which rolls them up in one
/// transaction with one statement per table: each patient's days are as if they were alone.
async fn run_cases_together(store: &Store, cases: Vec<Case>) -> Result<(), TestCaseError> {
    let now = Utc::now();
    let mut patients = Vec::new();
    for case in &cases {
        patients.push(set_up(store, case, now).await);
    }
    for (patient, case) in patients.iter().zip(&cases) {
        store_burst(store, patient, &case.first, now).await;
    }
    catch_up(store).await;
    for patient in &patients {
        agree(store, patient, "caught up together").await?;
    }
    for (patient, case) in patients.iter().zip(&cases) {
        store_burst(store, patient, &case.backfill, now).await;
    }
    catch_up(store).await;
    for patient in &patients {
        agree(store, patient, "late backfills rolled up together").await?;
    }
    Ok(())
}

#[test]
fn one_claim_of_many_patients_rolls_each_up_as_if_alone() {
    let (runtime, _db, store) = migrated_store();
    let mut runner = runner(8);
    runner
        .run(&prop::collection::vec(case(), 2..6), |cases| {
            runtime.block_on(run_cases_together(&store, cases))
        })
        .expect("rollups equal raw readings for every patient");
}

/// The case random data rarely hits: a late reading just after midnight ends the previous
/// day's last reading early, which changes that day too.
#[test]
fn a_late_reading_after_midnight_updates_the_day_before() {
    let (runtime, _db, store) = migrated_store();
    let now = Utc::now();
    let midnight = (now - Duration::days(2))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let minutes_ago = |at: DateTime<Utc>| (now - at).num_minutes();
    let case = Case {
        zone: "UTC",
        first: Burst {
            start_minutes_ago: minutes_ago(midnight - Duration::minutes(10)),
            glucose: vec![(0, 100.0, false), (300, 60.0, false)],
            blood_pressure: vec![],
        },
        backfill: Burst {
            start_minutes_ago: minutes_ago(midnight + Duration::minutes(5)),
            glucose: vec![(0, 200.0, false)],
            blood_pressure: vec![],
        },
        new_zone: "UTC",
        pregnancy_targets: false,
        since_minutes_ago: None,
    };
    runtime
        .block_on(run_case(&store, case))
        .expect("rollups equal raw readings");
}

/// A device sending as it measures: readings stored a few at a time, each batch rolled up
/// before the next. Days are then continued from their rollups rather than computed again,
/// and still equal the days computed from the raw readings; a late backfill after that
/// falls back to computing them again.
async fn run_in_order(
    store: &Store,
    case: Case,
    batch_sizes: Vec<usize>,
) -> Result<usize, TestCaseError> {
    let now = Utc::now();
    let patient = set_up(store, &case, now).await;
    let mut continued =
        store_in_order(store, &patient, &case.first, now, &batch_sizes, Some(50)).await;
    agree(store, &patient, "rolled up in order").await?;
    store_burst(store, &patient, &case.backfill, now).await;
    continued += catch_up(store).await;
    agree(store, &patient, "late backfill rolled up").await?;
    Ok(continued)
}

#[test]
fn readings_in_order_continue_their_days_exactly() {
    let (runtime, _db, store) = migrated_store();
    let mut runner = runner(12);
    runner
        .run(
            &(case(), prop::collection::vec(1usize..6, 1..4)),
            |(case, sizes)| {
                runtime
                    .block_on(run_in_order(&store, case, sizes))
                    .map(|_| ())
            },
        )
        .expect("continued days equal raw readings");

    // One reading a batch: each reading after the first continues the day.
    let continued = runtime
        .block_on(run_in_order(&store, cgm_morning(Utc::now()), vec![1]))
        .expect("continued days equal raw readings");
    assert_eq!(
        continued, 23,
        "each reading after the first continues the day"
    );
}

/// [`run_in_order`] with a consumer behind the ingest: every batch stored before the first
/// claim, then claims of `claim_items` items; then a late backfill.
async fn run_behind(
    store: &Store,
    case: Case,
    batch_sizes: Vec<usize>,
    claim_items: i64,
) -> Result<(), TestCaseError> {
    let now = Utc::now();
    let patient = set_up(store, &case, now).await;
    store_in_order(store, &patient, &case.first, now, &batch_sizes, None).await;
    catch_up_by(store, claim_items).await;
    agree(store, &patient, "rolled up from behind").await?;
    store_burst(store, &patient, &case.backfill, now).await;
    catch_up_by(store, claim_items).await;
    agree(store, &patient, "late backfill rolled up from behind").await
}

#[test]
fn a_consumer_behind_its_queue_rolls_up_exactly() {
    let (runtime, _db, store) = migrated_store();
    let mut runner = runner(12);
    runner
        .run(
            &(case(), prop::collection::vec(1usize..6, 1..4), 1i64..3),
            |(case, sizes, claim_items)| {
                runtime.block_on(run_behind(&store, case, sizes, claim_items))
            },
        )
        .expect("days rolled up from behind equal raw readings");
}

/// A consumer behind the ingest: every batch is stored before the first is rolled up, then
/// the work is done one batch a claim. Each claim computes the days as they were when its
/// readings were stored, not with everything stored since (which the next claims' readings
/// would then precede, making each compute the day again), so every claim after the first
/// continues the day; and the days still equal those computed from the raw readings.
#[test]
fn a_consumer_behind_its_queue_continues_its_days_claim_by_claim() {
    let (runtime, _db, store) = migrated_store();
    let now = Utc::now();
    let case = cgm_morning(now);
    let continued = runtime.block_on(async {
        let patient = set_up(&store, &case, now).await;
        store_in_order(&store, &patient, &case.first, now, &[1], None).await;
        let continued = catch_up_by(&store, 1).await;
        agree(&store, &patient, "rolled up one claim at a time")
            .await
            .expect("continued days equal raw readings");
        continued
    });
    assert_eq!(
        continued, 23,
        "each claim after the first continues the day"
    );
}

/// A 5-minute CGM (and a finger stick now and then) through yesterday morning, 24 readings;
/// then a late reading between two of them.
fn cgm_morning(now: DateTime<Utc>) -> Case {
    let morning = (now - Duration::days(1))
        .date_naive()
        .and_hms_opt(6, 0, 0)
        .expect("six o'clock")
        .and_utc();
    Case {
        zone: "UTC",
        first: Burst {
            start_minutes_ago: (now - morning).num_minutes(),
            glucose: (0..24)
                .map(|i| (300, [65.0, 120.0, 190.0, 260.0][i % 4], i % 7 == 3))
                .collect(),
            blood_pressure: vec![],
        },
        backfill: Burst {
            start_minutes_ago: (now - morning).num_minutes() - 7,
            glucose: vec![(0, 150.0, false)],
            blood_pressure: vec![],
        },
        new_zone: "UTC",
        pregnancy_targets: false,
        since_minutes_ago: None,
    }
}
