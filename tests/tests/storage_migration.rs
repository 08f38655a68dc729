//! Migrations convert a database that holds data: the narrow reading rows read back through
//! `glucose_readings` and `blood_pressure_readings` exactly as stored before, and the
//! acknowledgements shared by all caregivers become each caregiver's own, every device that
//! has readings gets its latest one for the silence checks, and follow-up work still queued
//! per patient is claimed from the per-batch queue.

use chronicle_storage::MIGRATOR;
use chronicle_tests::TestDatabase;
use sqlx::migrate::Migrator;
use std::borrow::Cow;

/// The migration that introduced the sample tables.
const COMPACT_READINGS: i64 = 8;

/// The migration that keys caregivers' acknowledgements by grant.
const PERSONAL_ACKNOWLEDGEMENTS: i64 = 49;

/// The migration that keeps each device's latest reading.
const DEVICE_LAST_READINGS: i64 = 51;

/// The migration that queues follow-up work per batch.
const FOLLOWUPS_PER_BATCH: i64 = 54;

/// A database with Chronicle's migrations up to (not including) `version` applied.
async fn database_before(version: i64) -> TestDatabase {
    let db = TestDatabase::create().await.expect("database");
    let earlier = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < version)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    earlier.run(&db.pool).await.expect("the earlier migrations");
    db
}

type GlucoseRow = (
    String,
    chrono::DateTime<chrono::Utc>,
    uuid::Uuid,
    f64,
    Option<f64>,
    String,
    String,
    Option<String>,
    i16,
    Option<String>,
);

#[tokio::test]
async fn existing_readings_survive_the_narrow_rows_migration() {
    let db = database_before(COMPACT_READINGS).await;
    let patient = uuid::Uuid::new_v4();
    for statement in [
        "INSERT INTO patients (id, display_name) VALUES ($1, 'Before')",
        "INSERT INTO devices (id, patient_id, kind, secret_hash)
         VALUES ('dev_cgm', $1, 'cgm', sha256('a')), ('dev_cuff', $1, 'bp', sha256('b'))",
        "INSERT INTO glucose_readings (device_id, measured_at, patient_id, value_mg_dl,
             original_value, original_unit, source, flag, utc_offset_minutes, device_reading_id)
         VALUES ('dev_cgm', '2026-03-01T08:00:00Z', $1, 112, 112, 'mg/dL', 'cgm', NULL, 60, 'a'),
                ('dev_cgm', '2026-03-01T08:05:00Z', $1, 104.490422, 5.8, 'mmol/L', 'cgm', NULL, 60, NULL),
                ('dev_cgm', '2026-03-01T08:10:00Z', $1, 40, NULL, 'mg/dL', 'cgm', 'lo', 60, NULL),
                ('dev_cgm', '2026-03-01T08:15:00Z', $1, 400, NULL, 'mmol/L', 'lab', 'hi', -300, 'z')",
        "INSERT INTO blood_pressure_readings (device_id, measured_at, patient_id, systolic,
             diastolic, pulse, utc_offset_minutes, device_reading_id)
         VALUES ('dev_cuff', '2026-03-01T07:00:00Z', $1, 128, 82, 71, 60, 'm1'),
                ('dev_cuff', '2026-03-01T19:00:00Z', $1, 131, 85, NULL, 60, NULL)",
    ] {
        sqlx::query(statement)
            .bind(patient)
            .execute(&db.pool)
            .await
            .expect(statement);
    }
    let glucose_query = "SELECT device_id, measured_at, patient_id, value_mg_dl, original_value,
            original_unit, source, flag, utc_offset_minutes, device_reading_id
         FROM glucose_readings ORDER BY measured_at";
    let pressure_query = "SELECT device_id, measured_at, patient_id, systolic, diastolic, pulse,
            utc_offset_minutes, device_reading_id FROM blood_pressure_readings ORDER BY measured_at";
    let glucose: Vec<GlucoseRow> = sqlx::query_as(glucose_query)
        .fetch_all(&db.pool)
        .await
        .expect("glucose before");
    type PressureRow = (
        String,
        chrono::DateTime<chrono::Utc>,
        uuid::Uuid,
        i16,
        i16,
        Option<i16>,
        i16,
        Option<String>,
    );
    let pressure: Vec<PressureRow> = sqlx::query_as(pressure_query)
        .fetch_all(&db.pool)
        .await
        .expect("pressure before");

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the narrow rows migration");
    let glucose_after: Vec<GlucoseRow> = sqlx::query_as(glucose_query)
        .fetch_all(&db.pool)
        .await
        .expect("glucose after");
    let pressure_after: Vec<PressureRow> = sqlx::query_as(pressure_query)
        .fetch_all(&db.pool)
        .await
        .expect("pressure after");
    // mg/dL is kept to the thousandth from this migration on.
    let to_thousandths = |rows: Vec<GlucoseRow>| -> Vec<GlucoseRow> {
        rows.into_iter()
            .map(|mut row| {
                row.3 = (row.3 * 1000.0).round() / 1000.0;
                row
            })
            .collect()
    };
    assert_eq!(glucose_after[1].3, 104.49);
    assert_eq!(glucose_after, to_thousandths(glucose));
    assert_eq!(pressure_after, pressure);
    assert_eq!(db.count("glucose_samples").await, 4);
    assert_eq!(db.count("blood_pressure_samples").await, 2);
}

/// Before, all caregivers shared one acknowledgement of an alert; after, each caregiver's
/// grant holds it (still naming who made it), and the family's stays the family's.
/// An acknowledgement as stored: audience, grant, who, note.
type AcknowledgementRow = (
    String,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    Option<String>,
);

#[tokio::test]
async fn shared_caregiver_acknowledgements_become_each_caregivers_own() {
    let db = database_before(PERSONAL_ACKNOWLEDGEMENTS).await;
    let patient = uuid::Uuid::new_v4();
    let alert = uuid::Uuid::new_v4();
    let carers = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    let grants = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    let pressure_grant = uuid::Uuid::new_v4();
    for statement in [
        "INSERT INTO patients (id, display_name) VALUES ($1, 'Before')",
        "INSERT INTO users (id, email, display_name, role) VALUES
             ($2, 'a@example.org', 'A', 'caregiver'), ($3, 'b@example.org', 'B', 'caregiver')",
        // Two caregivers receiving glucose alerts, and one receiving blood pressure only.
        "INSERT INTO grants (id, patient_id, grantee_type, grantee_id, categories, access, purpose)
         VALUES ($4, $1, 'user', $2, '{glucose}', '{receive_alerts}', 'caregiving'),
                ($5, $1, 'user', $3, '{glucose}', '{receive_alerts}', 'caregiving'),
                ($7, $1, 'user', $3, '{blood_pressure}', '{receive_alerts}', 'caregiving')",
        "INSERT INTO alerts (id, patient_id, rule, category, severity, kind, status,
             triggered_at, last_seen_at, evidence)
         VALUES ($6, $1, 'glucose_low', 'glucose', 'warning', 'alert', 'open', now(), now(), '{}')",
        "INSERT INTO alert_acknowledgements (alert_id, audience, acknowledged_by, note)
         VALUES ($6, 'caregiving', $2, 'texted her'), ($6, 'patient', NULL, 'fine')",
    ] {
        sqlx::query(statement)
            .bind(patient)
            .bind(carers[0])
            .bind(carers[1])
            .bind(grants[0])
            .bind(grants[1])
            .bind(alert)
            .bind(pressure_grant)
            .execute(&db.pool)
            .await
            .expect(statement);
    }

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the personal acknowledgements migration");
    let mut rows: Vec<AcknowledgementRow> = sqlx::query_as(
        "SELECT audience, grant_id, acknowledged_by, note FROM alert_acknowledgements
             WHERE alert_id = $1",
    )
    .bind(alert)
    .fetch_all(&db.pool)
    .await
    .expect("acknowledgements after");
    rows.sort();
    let mut expected = vec![
        (
            "caregiving".to_owned(),
            Some(grants[0]),
            Some(carers[0]),
            Some("texted her".to_owned()),
        ),
        (
            "caregiving".to_owned(),
            Some(grants[1]),
            Some(carers[0]),
            Some("texted her".to_owned()),
        ),
        ("patient".to_owned(), None, None, Some("fine".to_owned())),
    ];
    expected.sort();
    assert_eq!(rows, expected);

    // The family's row stays unique, and a caregiver's row names a grant.
    for (statement, what) in [
        (
            "INSERT INTO alert_acknowledgements (alert_id, audience) VALUES ($1, 'patient')",
            "a second family acknowledgement",
        ),
        (
            "INSERT INTO alert_acknowledgements (alert_id, audience) VALUES ($1, 'caregiving')",
            "a caregiver's acknowledgement without a grant",
        ),
    ] {
        let refused = sqlx::query(statement).bind(alert).execute(&db.pool).await;
        assert!(refused.is_err(), "{what} was accepted");
    }
}

#[tokio::test]
async fn every_device_with_readings_gets_its_latest_one() {
    let db = database_before(DEVICE_LAST_READINGS).await;
    let patient = uuid::Uuid::new_v4();
    for statement in [
        "INSERT INTO patients (id, display_name) VALUES ($1, 'Before')",
        "INSERT INTO devices (id, patient_id, kind, secret_hash)
         VALUES ('dev_cgm', $1, 'cgm', sha256('a')), ('dev_cuff', $1, 'bp', sha256('b')),
                ('dev_meter', $1, 'meter', sha256('c'))",
        "INSERT INTO glucose_samples (device_key, utc_offset_minutes, codes, measured_at,
             value_milli_mg_dl, received_after_s)
         SELECT key, 0, 0, t, 100000, 0 FROM devices,
             UNNEST('{2026-03-01T08:00:00Z,2026-03-01T08:10:00Z,2026-03-01T08:05:00Z}'::timestamptz[]) AS t
         WHERE id = 'dev_cgm'",
        "INSERT INTO blood_pressure_samples (device_key, systolic, diastolic, utc_offset_minutes,
             received_after_s, measured_at)
         SELECT key, 120, 80, 0, 0, '2026-03-01T07:00:00Z' FROM devices WHERE id = 'dev_cuff'",
    ] {
        sqlx::query(statement)
            .bind(patient)
            .execute(&db.pool)
            .await
            .expect(statement);
    }

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the device last readings migration");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT d.id, to_char(l.last_measured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
             to_char(l.silence_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
         FROM device_last_readings l JOIN devices d ON d.key = l.device_key ORDER BY d.id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("last readings");
    let row = |id: &str, last: &str, due: &str| (id.to_owned(), last.to_owned(), due.to_owned());
    assert_eq!(
        rows,
        vec![
            row("dev_cgm", "2026-03-01 08:10", "2026-03-01 08:25"),
            row("dev_cuff", "2026-03-01 07:00", "2026-03-02 07:00"),
        ],
        "the meter has no readings, so no row"
    );
}

#[tokio::test]
async fn follow_up_work_still_queued_moves_to_the_per_batch_queue() {
    let db = database_before(FOLLOWUPS_PER_BATCH).await;
    let (ada, bo) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "INSERT INTO ingest_followups (consumer, patient_id, kind, first_measured_at,
             last_measured_at, readings)
         VALUES ('alerts', $1, 'glucose', '2026-03-01T08:00:00Z', '2026-03-01T08:10:00Z', 3),
                ('alerts', $2, 'blood_pressure', '2026-03-01T07:00:00Z',
                 '2026-03-01T07:00:00Z', 1),
                ('trends', $1, 'glucose', '2026-03-01T08:00:00Z', '2026-03-01T08:10:00Z', 3)",
    )
    .bind(ada)
    .bind(bo)
    .execute(&db.pool)
    .await
    .expect("queued items");

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the per-batch follow-ups migration");
    let store = chronicle_storage::Store::from_pool(db.pool.clone());
    assert_eq!(store.pending_followups("alerts").await.expect("count"), 2);
    assert_eq!(store.pending_followups("trends").await.expect("count"), 1);
    let claim = store
        .claim_followups("alerts", 10)
        .await
        .expect("claim")
        .expect("items");
    let mut items: Vec<(
        uuid::Uuid,
        chronicle_domain::ReadingKind,
        String,
        String,
        i32,
    )> = claim
        .items
        .iter()
        .map(|f| {
            (
                f.patient_id,
                f.kind,
                f.first_measured_at.to_rfc3339(),
                f.last_measured_at.to_rfc3339(),
                f.readings,
            )
        })
        .collect();
    items.sort_by_key(|item| item.2.clone());
    assert_eq!(
        items,
        vec![
            (
                bo,
                chronicle_domain::ReadingKind::BloodPressure,
                "2026-03-01T07:00:00+00:00".to_owned(),
                "2026-03-01T07:00:00+00:00".to_owned(),
                1
            ),
            (
                ada,
                chronicle_domain::ReadingKind::Glucose,
                "2026-03-01T08:00:00+00:00".to_owned(),
                "2026-03-01T08:10:00+00:00".to_owned(),
                3
            ),
        ]
    );
    claim.complete().await.expect("complete");
    assert_eq!(store.pending_followups("alerts").await.expect("count"), 0);
}
