//! The ingest's follow-up queue against a real PostgreSQL, through the real pipeline: each
//! batch that stores readings enqueues one item per consumer, patient and kind with the range
//! it stored; duplicates and refusals enqueue nothing; a claim that is dropped puts its items
//! back, and two claims never hold the same item; a fresh reading is claimed ahead of a backlog,
//! and a consumer's claim seeks its own rows however many the other consumer left queued;
//! and commits of mostly late readings tell the process's consumers that a backlog drains.
//! Each device's latest reading is kept for the silence checks, which settle what an alert
//! covers. The ingest's registry cache drops a device
//! the moment the registry announces its revocation.

use bytes::Bytes;
use chronicle_domain::sharing::{AccessAction, Principal, Role};
use chronicle_domain::wire::DecodeLimits;
use chronicle_domain::{DeviceKind, ReadingKind};
use chronicle_ingest::registry_cache::RegistryCache;
use chronicle_ingest::{BrokerAuthorization, IncomingMessage, IngestMetrics, Pipeline};
use chronicle_storage::{
    Device, FollowupClaim, NewPatient, Patient, Store, UrgentPatients, UrgentReadings,
};
use chronicle_tests::clinic::population_with_a_reading_each;
use chronicle_tests::{TestDatabase, rows_read, rows_read_since};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const CONSUMERS: &[&str] = &["first", "second"];

fn message(device_id: &str, payload: serde_json::Value) -> IncomingMessage {
    IncomingMessage {
        device_id: device_id.to_owned(),
        payload: Bytes::from(payload.to_string()),
        received_at: Utc::now(),
        authorization: BrokerAuthorization::NotReported,
        redelivered: false,
    }
}

fn glucose(at: DateTime<Utc>, value: f64) -> serde_json::Value {
    json!({"type": "glucose", "value": value, "unit": "mg/dL",
           "measured_at": at.to_rfc3339_opts(SecondsFormat::Secs, true)})
}

/// A migrated store on a database of its own (which lives as long as the handle returned).
async fn fresh_store() -> (TestDatabase, Store) {
    let db = TestDatabase::create().await.expect("database");
    let store = Store::from_pool(db.pool.clone());
    store.migrate().await.expect("migrations");
    (db, store)
}

/// A patient named `name` (in UTC) with one device of each of `kinds`, in that order.
async fn patient_with(store: &Store, name: &str, kinds: &[DeviceKind]) -> (Patient, Vec<Device>) {
    let patient = store
        .create_patient(&NewPatient {
            display_name: name.into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient");
    let mut devices = Vec::new();
    for kind in kinds {
        let (device, _) = store
            .create_device(patient.id, *kind, None)
            .await
            .expect("device");
        devices.push(device);
    }
    (patient, devices)
}

/// The ingest's pipeline on `store`, with the default limits.
fn pipeline_on(store: &Store) -> Pipeline {
    Pipeline::new(
        store.clone(),
        DecodeLimits::default(),
        IngestMetrics::register(&mut Registry::default()),
    )
}

/// A claimed item as the tests compare it: (patient, kind, first, last, readings).
type ClaimedItem = (Uuid, ReadingKind, DateTime<Utc>, DateTime<Utc>, i32);

/// Patient, then glucose before blood pressure: a stable order to compare claims in.
fn claim_order(item: &ClaimedItem) -> (Uuid, bool) {
    (item.0, item.1 != ReadingKind::Glucose)
}

/// The claim's items, in [`claim_order`].
fn items_of(claim: &FollowupClaim) -> Vec<ClaimedItem> {
    let mut items: Vec<ClaimedItem> = claim
        .items
        .iter()
        .map(|f| {
            (
                f.patient_id,
                f.kind,
                f.first_measured_at,
                f.last_measured_at,
                f.readings,
            )
        })
        .collect();
    items.sort_by_key(claim_order);
    items
}

#[tokio::test]
async fn stored_readings_enqueue_followups_per_consumer_patient_and_kind() {
    let (_db, store) = fresh_store().await;
    let (ada, ada_devices) = patient_with(&store, "Ada", &[DeviceKind::Cgm, DeviceKind::Bp]).await;
    let (ada_cgm, ada_cuff) = (&ada_devices[0], &ada_devices[1]);
    let (bo, bo_devices) = patient_with(&store, "Bo", &[DeviceKind::Meter]).await;
    let bo_meter = &bo_devices[0];

    let pipeline = pipeline_on(&store).with_followup_consumers(CONSUMERS);
    let mut signal = pipeline.followups_enqueued();
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("time");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let batch = vec![
        message(
            ada_cgm.id.as_str(),
            json!({"readings": [glucose(at(10), 100.0), glucose(at(0), 110.0), glucose(at(5), 120.0)]}),
        ),
        message(
            ada_cuff.id.as_str(),
            json!({"type": "blood_pressure", "systolic": 130, "diastolic": 80,
                   "measured_at": at(7).to_rfc3339()}),
        ),
        message(bo_meter.id.as_str(), glucose(at(20), 95.0)),
        // Refused: enqueues nothing.
        message(bo_meter.id.as_str(), glucose(at(21), -4.0)),
    ];
    let outcomes = pipeline.process(&batch).await.expect("commit");
    assert_eq!(outcomes[0].ack.stored, 3);
    assert_eq!(outcomes[3].ack.rejected, 1);
    assert!(
        signal.has_changed().expect("sender alive"),
        "commit signalled"
    );
    signal.mark_unchanged();

    for consumer in CONSUMERS {
        assert_eq!(store.pending_followups(consumer).await.expect("count"), 3);
    }
    let claim = store
        .claim_followups("first", 10)
        .await
        .expect("claim")
        .expect("items");
    let mut expected = vec![
        (ada.id, ReadingKind::Glucose, at(0), at(10), 3),
        (ada.id, ReadingKind::BloodPressure, at(7), at(7), 1),
        (bo.id, ReadingKind::Glucose, at(20), at(20), 1),
    ];
    expected.sort_by_key(claim_order);
    assert_eq!(items_of(&claim), expected);

    // While "first"'s items are claimed, another claim does not see them; "second" has its own.
    assert!(
        store
            .claim_followups("first", 10)
            .await
            .expect("claim")
            .is_none()
    );
    // A claim takes whole queue rows, at least one: a batch's items travel together.
    let second = store
        .claim_followups("second", 1)
        .await
        .expect("claim")
        .expect("items");
    assert_eq!(items_of(&second), expected, "the batch's row, whole");
    // A dropped claim gives its items back; a completed one removes them.
    drop(claim);
    second.complete().await.expect("complete");
    assert_eq!(store.pending_followups("first").await.expect("count"), 3);
    assert_eq!(store.pending_followups("second").await.expect("count"), 0);

    // A resent batch is all duplicates: nothing new, nothing enqueued, no signal.
    let again = pipeline.process(&batch[..3]).await.expect("commit");
    assert_eq!(again[0].ack.duplicates, 3);
    assert_eq!(store.pending_followups("first").await.expect("count"), 3);
    assert!(!signal.has_changed().expect("sender alive"));

    // A batch of Ada's alone queues a row of her items alone.
    let ada_alone = pipeline
        .process(&[message(ada_cgm.id.as_str(), glucose(at(30), 101.0))])
        .await
        .expect("commit");
    assert_eq!(ada_alone[0].ack.stored, 1);
    assert_eq!(store.pending_followups("first").await.expect("count"), 4);

    // Erasing a patient drops their queued work: their rows, and their items of rows shared
    // with others (the others' items stay queued).
    let ada_herself = Principal {
        user_id: Uuid::new_v4(),
        role: Some(Role::Patient),
        patient_id: Some(ada.id),
        ..Principal::default()
    };
    let actor = store
        .authorize_as_patient(&ada_herself, ada.id, AccessAction::Erase)
        .await
        .expect("gate")
        .expect("acts as herself");
    store.erase(&actor).await.expect("erase");
    assert_eq!(store.pending_followups("first").await.expect("count"), 1);
    assert_eq!(store.pending_followups("second").await.expect("count"), 0);
    let left = store
        .claim_followups("first", 10)
        .await
        .expect("claim")
        .expect("Bo's item");
    assert_eq!(
        items_of(&left),
        [(bo.id, ReadingKind::Glucose, at(20), at(20), 1)]
    );
}

/// A batch of many patients queues its items a few hundred to a row, so a claim stays the
/// size of a round however large the batch; every item is claimed once.
#[tokio::test]
async fn a_large_batch_is_queued_in_rows_of_at_most_250_items() {
    const PATIENTS: u64 = 600;
    let (_db, store) = fresh_store().await;
    let measured_at = DateTime::from_timestamp(Utc::now().timestamp() - 60, 0).expect("time");
    let devices = population_with_a_reading_each(
        &store,
        PATIENTS,
        "Many",
        measured_at,
        |_| 110.0,
        &["first"],
    )
    .await;
    assert_eq!(
        store.pending_followups("first").await.expect("count"),
        PATIENTS as i64
    );

    let mut claimed = Vec::new();
    let mut claim_sizes = Vec::new();
    while let Some(claim) = store.claim_followups("first", 1).await.expect("claim") {
        claim_sizes.push(claim.items.len());
        claimed.extend(claim.items.iter().map(|f| f.patient_id));
        claim.complete().await.expect("complete");
    }
    claim_sizes.sort_unstable();
    assert_eq!(claim_sizes, [100, 250, 250]);
    claimed.sort_unstable();
    let mut expected: Vec<Uuid> = devices.iter().map(|d| d.patient_id).collect();
    expected.sort_unstable();
    assert_eq!(claimed, expected, "every patient's item, once");
}

/// The batch statement inserts new readings without looking for them first, and a batch
/// that holds a reading already stored is written again with the statement that skips it:
/// either way each reading is stored once, answered once as stored, and queued once.
#[tokio::test]
async fn a_batch_holding_stored_readings_stores_and_queues_only_the_new_ones() {
    let (_db, store) = fresh_store().await;
    let (ada, ada_devices) = patient_with(&store, "Ada", &[DeviceKind::Cgm]).await;
    let (bo, bo_devices) = patient_with(&store, "Bo", &[DeviceKind::Meter]).await;
    let (ada_cgm, bo_meter) = (ada_devices[0].id.as_str(), bo_devices[0].id.as_str());
    let pipeline = pipeline_on(&store).with_followup_consumers(&["first"]);
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("time");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let stored_and_duplicates = |outcomes: &[chronicle_ingest::MessageOutcome]| {
        outcomes
            .iter()
            .map(|o| (o.ack.stored, o.ack.duplicates))
            .collect::<Vec<_>>()
    };
    // What one claim of the consumer holds, taken for good.
    let queued = || async {
        let claim = store
            .claim_followups("first", 10)
            .await
            .expect("claim")
            .expect("items");
        let items = items_of(&claim);
        claim.complete().await.expect("complete");
        items
    };
    let mut expected_rows = 0;

    let first = pipeline
        .process(&[message(
            ada_cgm,
            json!({"readings": [glucose(at(0), 100.0), glucose(at(5), 105.0)]}),
        )])
        .await
        .expect("commit");
    assert_eq!(stored_and_duplicates(&first), [(2, 0)]);
    expected_rows += 2;
    assert_eq!(
        queued().await,
        [(ada.id, ReadingKind::Glucose, at(0), at(5), 2)]
    );

    // Twice: the first such batch meets the duplicate in the plain insert and is written
    // again; the second goes straight to the statement that skips.
    for round in 1..=2 {
        let outcomes = pipeline
            .process(&[
                message(
                    ada_cgm,
                    json!({"readings": [glucose(at(5 * round), 105.0),
                                        glucose(at(5 * round + 5), 110.0)]}),
                ),
                message(bo_meter, glucose(at(round), 90.0)),
            ])
            .await
            .expect("commit");
        assert_eq!(
            stored_and_duplicates(&outcomes),
            [(1, 1), (1, 0)],
            "round {round}"
        );
        expected_rows += 2;
        let mut expected = vec![
            (
                ada.id,
                ReadingKind::Glucose,
                at(5 * round + 5),
                at(5 * round + 5),
                1,
            ),
            (bo.id, ReadingKind::Glucose, at(round), at(round), 1),
        ];
        expected.sort_by_key(claim_order);
        assert_eq!(queued().await, expected, "round {round}");
    }

    // Two batches with the same new readings committing at once, both with the plain
    // insert (two servers, say): one stores them, the other waits for it, meets them
    // stored, and answers them as duplicates.
    let same = [message(
        ada_cgm,
        json!({"readings": [glucose(at(30), 120.0), glucose(at(35), 125.0)]}),
    )];
    let server =
        || pipeline_on(&Store::from_pool(store.pool().clone())).with_followup_consumers(&["first"]);
    let (one, other) = (server(), server());
    let (one, other) = tokio::join!(one.process(&same), other.process(&same));
    let mut answers = [
        stored_and_duplicates(&one.expect("commit")),
        stored_and_duplicates(&other.expect("commit")),
    ];
    answers.sort();
    assert_eq!(answers, [vec![(0, 2)], vec![(2, 0)]]);
    expected_rows += 2;
    assert_eq!(
        queued().await,
        [(ada.id, ReadingKind::Glucose, at(30), at(35), 2)]
    );

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM glucose_samples")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(rows, expected_rows);
}

/// After an outage the broker redelivers minutes of readings at once: a claim takes up to half
/// its items from the freshest current readings and the rest from the oldest, so a reading
/// measured now is worked on in the next round while the backlog still drains; the backlog
/// itself, not current, is claimed in the order it was stored.
#[tokio::test]
async fn a_fresh_reading_is_claimed_ahead_of_a_backlog() {
    let (_db, store) = fresh_store().await;
    let pipeline = pipeline_on(&store).with_followup_consumers(&["alerts-like"]);
    let now = Utc::now();
    let mut backlog = Vec::new();
    for i in 0..8 {
        let patient = store
            .create_patient(&NewPatient {
                display_name: format!("Backlog {i}"),
                time_zone: "UTC".into(),
            })
            .await
            .expect("patient");
        let (cgm, _) = store
            .create_device(patient.id, DeviceKind::Cgm, None)
            .await
            .expect("device");
        let at = now - Duration::minutes(10 - i);
        pipeline
            .process(&[message(cgm.id.as_str(), glucose(at, 100.0))])
            .await
            .expect("commit");
        backlog.push(patient.id);
    }
    let current = store
        .create_patient(&NewPatient {
            display_name: "Current".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("patient");
    let (cgm, _) = store
        .create_device(current.id, DeviceKind::Cgm, None)
        .await
        .expect("device");
    pipeline
        .process(&[message(cgm.id.as_str(), glucose(now, 48.0))])
        .await
        .expect("commit");

    let claim = store
        .claim_followups("alerts-like", 4)
        .await
        .expect("claim")
        .expect("items");
    let patients: std::collections::BTreeSet<Uuid> =
        claim.items.iter().map(|f| f.patient_id).collect();
    assert!(patients.contains(&current.id), "the current reading first");
    assert!(
        backlog[..3].iter().all(|p| patients.contains(p)),
        "and the oldest of the backlog for the rest"
    );
    assert_eq!(patients.len(), 4, "{patients:?}");
    claim.complete().await.expect("complete");
    // The rest of the backlog (not current) drains in later claims, in the order it was
    // stored.
    let mut drained = Vec::new();
    while let Some(claim) = store
        .claim_followups("alerts-like", 2)
        .await
        .expect("claim")
    {
        drained.extend(claim.items.iter().map(|f| f.patient_id));
        claim.complete().await.expect("complete");
    }
    assert_eq!(drained, backlog[3..]);
}

#[tokio::test]
async fn a_claim_seeks_its_own_consumers_rows_past_another_consumers_backlog() {
    // Connected as the server connects: its statements are planned once for any consumer.
    let db = TestDatabase::create().await.expect("database");
    let store = db.server_store(2).await.expect("store");
    // The second consumer fell behind (the rollups after an outage): its rows come first.
    let behind: i64 = 20_000;
    sqlx::query(
        "INSERT INTO ingest_followup_batches (consumer, freshest_measured_at, items,
             patient_ids, kinds, first_measured_at, last_measured_at, readings)
         SELECT consumer, now(), 1, ARRAY[gen_random_uuid()], ARRAY['glucose'], ARRAY[now()],
             ARRAY[now()], ARRAY[1]
         FROM (SELECT $1 AS consumer FROM generate_series(1, $2)
               UNION ALL SELECT $3) AS queued",
    )
    .bind(CONSUMERS[1])
    .bind(behind)
    .bind(CONSUMERS[0])
    .execute(&db.pool)
    .await
    .expect("queue");
    sqlx::query("ANALYZE ingest_followup_batches")
        .execute(&db.pool)
        .await
        .expect("analyze");
    let before = rows_read(&db.pool, "ingest_followup_batches").await;

    let age = store
        .oldest_followup_age_seconds(CONSUMERS[0])
        .await
        .expect("age");
    assert!(age < 60.0, "{age}");
    let claim = store
        .claim_followups(CONSUMERS[0], 100)
        .await
        .expect("claim")
        .expect("the first consumer's row");
    assert_eq!(claim.items.len(), 1);
    claim.complete().await.expect("complete");

    let read = rows_read_since(&db.pool, "ingest_followup_batches", before).await;
    assert!(
        read < 1_000,
        "the first consumer's look at its oldest row and its claim read {read} queue rows \
         of the {behind} the second consumer queued before"
    );
}

/// The pipeline tells this process's follow-up consumers when its commits store mostly late
/// readings (a backlog redelivered after an outage), so they leave it the database; the word
/// holds a while after (current readings queued behind the backlog are still its tail), and
/// duplicates say nothing.
#[tokio::test]
async fn commits_of_mostly_late_readings_signal_a_backlog() {
    let (_db, store) = fresh_store().await;
    let pipeline = pipeline_on(&store).with_followup_consumers(&["alerts-like"]);
    let backlog = pipeline.ingest_backlog();
    let (_, devices) = patient_with(&store, "Late", &[DeviceKind::Cgm]).await;
    let cgm = devices[0].id.as_str();
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("time");
    let minutes_ago = |m: i64| glucose(now - Duration::minutes(m), 110.0);

    // Two of three readings measured minutes ago: mostly late.
    let late_batch = json!({"readings": [minutes_ago(9), minutes_ago(8), glucose(now, 120.0)]});
    pipeline
        .process(&[message(cgm, late_batch.clone())])
        .await
        .expect("commit");
    assert!(backlog.draining(), "mostly late readings were stored");

    // The same message again stores nothing: no word either way.
    let outcomes = pipeline
        .process(&[message(cgm, late_batch)])
        .await
        .expect("commit");
    assert_eq!(outcomes[0].ack.duplicates, 3);
    assert!(backlog.draining());

    // One late reading of three: current readings prevail, and once the hold has passed
    // the backlog is over.
    let current_batch = json!({"readings": [
        minutes_ago(7),
        glucose(now + Duration::seconds(1), 121.0),
        glucose(now + Duration::seconds(2), 122.0),
    ]});
    pipeline
        .process(&[message(cgm, current_batch)])
        .await
        .expect("commit");
    tokio::time::sleep(chronicle_storage::followups::BACKLOG_LEAST_HOLD).await;
    assert!(!backlog.draining(), "the backlog is over");

    // And a commit of current readings alone never starts one.
    let (_, devices) = patient_with(&store, "Current", &[DeviceKind::Cgm]).await;
    pipeline
        .process(&[message(devices[0].id.as_str(), glucose(now, 100.0))])
        .await
        .expect("commit");
    assert!(!backlog.draining());
}

#[tokio::test]
async fn the_registry_cache_forgets_a_device_the_moment_it_is_revoked() {
    let (_db, store) = fresh_store().await;
    let (_, devices) = patient_with(&store, "Ada", &[DeviceKind::Cgm]).await;
    let cgm = &devices[0];
    let cache = Arc::new(RegistryCache::default());
    let shutdown = CancellationToken::new();
    let follower = tokio::spawn({
        let (cache, store, shutdown) = (cache.clone(), store.clone(), shutdown.clone());
        async move { cache.follow(store, shutdown).await }
    });
    let id = cgm.id.as_str();
    // Read once, then held (the follower's start, which drops everything, may come first).
    let held = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let devices = cache.devices(&store, &[id]).await.expect("lookup");
            assert!(!devices[id].revoked);
            if cache.devices_held() == 1 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if cache.devices_held() == 1 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(held.is_ok(), "the device is held");

    store.revoke_device(&cgm.id).await.expect("revoke");
    let forgotten = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while cache.devices_held() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(forgotten.is_ok(), "the announcement drops the held device");
    let devices = cache.devices(&store, &[id]).await.expect("lookup");
    assert!(devices[id].revoked, "read again: revoked");
    shutdown.cancel();
    follower.await.expect("follower stops");
}

/// A device's silence schedule as stored: its latest reading and when its silence is due.
async fn silence_of(
    store: &Store,
    device_id: &str,
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "SELECT l.last_measured_at, l.silence_due_at FROM device_last_readings l
         JOIN devices d ON d.key = l.device_key WHERE d.id = $1",
    )
    .bind(device_id)
    .fetch_optional(store.pool())
    .await
    .expect("silence")
}

#[tokio::test]
async fn stored_readings_keep_each_devices_latest_reading_for_the_silence_checks() {
    let (_db, store) = fresh_store().await;
    let (ada, ada_devices) = patient_with(&store, "Ada", &[DeviceKind::Cgm]).await;
    let (bo, bo_devices) = patient_with(&store, "Bo", &[DeviceKind::Meter]).await;
    let (cy, cy_devices) = patient_with(&store, "Cy", &[DeviceKind::Cgm]).await;
    let (ada_cgm, bo_meter, cy_cgm) = (&ada_devices[0], &bo_devices[0], &cy_devices[0]);
    let pipeline = pipeline_on(&store);
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("time");
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let batch = vec![
        message(
            ada_cgm.id.as_str(),
            json!({"readings": [glucose(at(10), 100.0), glucose(at(0), 110.0)]}),
        ),
        message(bo_meter.id.as_str(), glucose(at(20), 95.0)),
        message(cy_cgm.id.as_str(), glucose(at(30), 95.0)),
    ];
    pipeline.process(&batch).await.expect("commit");
    // Silent since a reading 50 minutes ago: due 15 minutes after it for a CGM, a day after it
    // for a meter.
    assert_eq!(
        silence_of(&store, ada_cgm.id.as_str()).await,
        Some((at(10), Some(at(25))))
    );
    assert_eq!(
        silence_of(&store, bo_meter.id.as_str()).await,
        Some((at(20), Some(at(20) + Duration::days(1))))
    );
    // A late reading older than the latest leaves it as it was.
    pipeline
        .process(&[message(ada_cgm.id.as_str(), glucose(at(5), 105.0))])
        .await
        .expect("commit");
    assert_eq!(
        silence_of(&store, ada_cgm.id.as_str()).await,
        Some((at(10), Some(at(25))))
    );

    let mut due = store.patients_due_for_time_checks().await.expect("due");
    due.sort();
    let mut expected = vec![ada.id, cy.id];
    expected.sort();
    assert_eq!(due, expected, "the two silent CGMs, not the meter");

    // A `no_data` alert that has seen Ada's silence covers it (even resolved): the look settles
    // it, and it stays settled.
    sqlx::query(
        "INSERT INTO alerts (id, patient_id, rule, category, severity, kind, status,
             triggered_at, last_seen_at, evidence, resolved_at, resolution)
         VALUES ($1, $2, 'no_data', 'glucose', 'info', 'alert', 'resolved', $3, $3, '{}',
             now(), 'manual')",
    )
    .bind(Uuid::new_v4())
    .bind(ada.id)
    .bind(at(40))
    .execute(store.pool())
    .await
    .expect("alert");
    // Cy's device is revoked: nothing to look at any more.
    store.revoke_device(&cy_cgm.id).await.expect("revoke");
    assert_eq!(
        store.patients_due_for_time_checks().await.expect("due"),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        silence_of(&store, ada_cgm.id.as_str()).await,
        Some((at(10), None))
    );
    assert_eq!(
        silence_of(&store, cy_cgm.id.as_str()).await,
        Some((at(30), None))
    );
    assert_eq!(
        store.patients_due_for_time_checks().await.expect("due"),
        Vec::<Uuid>::new()
    );

    // Her next reading starts a new silence, due 15 minutes after it.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("time");
    pipeline
        .process(&[message(ada_cgm.id.as_str(), glucose(now, 120.0))])
        .await
        .expect("commit");
    assert_eq!(
        silence_of(&store, ada_cgm.id.as_str()).await,
        Some((now, Some(now + Duration::minutes(15))))
    );
    // A device that is deleted (its patient erased) takes its schedule with it.
    sqlx::query("DELETE FROM devices WHERE patient_id = $1")
        .bind(bo.id)
        .execute(store.pool())
        .await
        .expect("delete");
    assert_eq!(silence_of(&store, bo_meter.id.as_str()).await, None);
}

/// The ingest announces the patients of newly stored readings that may raise an urgent alarm,
/// with what to evaluate, to this process's urgent lane; the queued work stays for the rounds.
#[tokio::test]
async fn a_reading_that_may_raise_an_urgent_alarm_is_announced_to_its_own_lane() {
    let (_db, store) = fresh_store().await;
    let (_ada, ada_devices) = patient_with(&store, "Ada", &[DeviceKind::Cgm]).await;
    let (bo, bo_devices) = patient_with(&store, "Bo", &[DeviceKind::Cgm, DeviceKind::Bp]).await;
    let (cy, cy_devices) = patient_with(&store, "Cy", &[DeviceKind::Cgm]).await;
    let urgent = UrgentPatients::default();
    let pipeline = pipeline_on(&store)
        .with_followup_consumers(CONSUMERS)
        .with_urgent_lane(urgent.clone());
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("time");
    let at = |minutes: i64| now - Duration::minutes(minutes);

    let batch = vec![
        // In range, and a very low one measured two hours ago (late: no live alarm).
        message(ada_devices[0].id.as_str(), glucose(at(5), 120.0)),
        message(ada_devices[0].id.as_str(), glucose(at(120), 45.0)),
        // A very low glucose and a crisis reading of one patient.
        message(bo_devices[0].id.as_str(), glucose(at(1), 45.0)),
        message(
            bo_devices[1].id.as_str(),
            json!({"type": "blood_pressure", "systolic": 190, "diastolic": 125,
                   "measured_at": at(1).to_rfc3339()}),
        ),
        // Two very low readings of one patient: evaluated from the earlier.
        message(cy_devices[0].id.as_str(), glucose(at(1), 45.0)),
        message(cy_devices[0].id.as_str(), glucose(at(3), 44.0)),
    ];
    let outcomes = pipeline.process(&batch).await.expect("commit");
    assert!(outcomes.iter().all(|o| o.ack.stored == 1));
    let mut announced = tokio::time::timeout(std::time::Duration::from_secs(5), urgent.next())
        .await
        .expect("announced at the commit");
    let order = |r: &UrgentReadings| (r.patient_id, r.kind != ReadingKind::Glucose);
    announced.sort_by_key(order);
    let urgent_of = |patient_id, kind, first_measured_at| UrgentReadings {
        patient_id,
        kind,
        first_measured_at,
    };
    let mut expected = vec![
        urgent_of(bo.id, ReadingKind::Glucose, at(1)),
        urgent_of(bo.id, ReadingKind::BloodPressure, at(1)),
        urgent_of(cy.id, ReadingKind::Glucose, at(3)),
    ];
    expected.sort_by_key(order);
    assert_eq!(announced, expected, "Ada's readings raise no urgent alarm");

    // Every item stays queued for the rounds, for both consumers.
    for consumer in CONSUMERS {
        assert_eq!(store.pending_followups(consumer).await.expect("count"), 4);
    }
}

/// A row of current readings may hold more items than a claim's half (a commit of many
/// patients): it is claimed whole, and the claim still takes the other half from the oldest
/// rows, so the backlog drains whatever the current rows hold.
#[tokio::test]
async fn a_large_row_of_current_readings_does_not_hold_back_the_oldest() {
    let (_db, store) = fresh_store().await;
    let queue = |freshest: DateTime<Utc>, items: i32| {
        sqlx::query_scalar::<_, Uuid>(
            "INSERT INTO ingest_followup_batches (consumer, freshest_measured_at, items,
                 patient_ids, kinds, first_measured_at, last_measured_at, readings)
             SELECT 'alerts-like', $2, $1, array_agg(gen_random_uuid()), array_agg('glucose'::text),
                 array_agg($2::timestamptz), array_agg($2::timestamptz), array_agg(1)
             FROM generate_series(1, $1)
             RETURNING patient_ids[1]",
        )
        .bind(items)
        .bind(freshest)
    };
    let mut oldest = Vec::new();
    for _ in 0..3 {
        let patient = queue(Utc::now() - Duration::hours(1), 1)
            .fetch_one(store.pool())
            .await
            .expect("queue");
        oldest.push(patient);
    }
    queue(Utc::now(), 4)
        .fetch_one(store.pool())
        .await
        .expect("queue");

    let claim = store
        .claim_followups("alerts-like", 4)
        .await
        .expect("claim")
        .expect("items");
    let patients: Vec<Uuid> = claim.items.iter().map(|f| f.patient_id).collect();
    assert_eq!(
        patients.len(),
        6,
        "the current row whole, and two of the oldest"
    );
    assert!(patients.contains(&oldest[0]) && patients.contains(&oldest[1]));
    claim.complete().await.expect("complete");
}
