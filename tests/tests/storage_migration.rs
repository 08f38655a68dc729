//! The migration to narrow reading rows converts a database that holds readings: every
//! reading reads back through `glucose_readings` and `blood_pressure_readings` exactly as it
//! was stored before.

use chronicle_storage::MIGRATOR;
use chronicle_tests::TestDatabase;
use sqlx::migrate::Migrator;
use std::borrow::Cow;

/// The migration that introduced the sample tables.
const COMPACT_READINGS: i64 = 8;

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
    let db = TestDatabase::create().await.expect("database");
    let before = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < COMPACT_READINGS)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    before.run(&db.pool).await.expect("the earlier migrations");
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
