//! Storage calls cancelled part-way, as shutdown, a client hanging up or a timeout cancels
//! them: no connection goes back to the pool inside a transaction. If one did, every later
//! statement on it (an ingest batch included) would run inside that transaction, report
//! success, and be discarded when the connection closes.

use chronicle_domain::Reading;
use chronicle_storage::Store;
use chronicle_tests::TestDatabase;
use chronicle_tests::clinic::{batch_for, cgm_glucose, population_with_a_reading_each};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// A migrated database with a canary table, and a store on a pool of one connection, so each
/// statement after a cancelled call runs on the connection that call used.
struct OneConnection {
    db: TestDatabase,
    pool: PgPool,
    store: Store,
}

impl OneConnection {
    async fn new() -> OneConnection {
        let db = TestDatabase::create().await.expect("database");
        Store::from_pool(db.pool.clone())
            .migrate()
            .await
            .expect("migrations");
        sqlx::query("CREATE TABLE committed_canary (step int PRIMARY KEY)")
            .execute(&db.pool)
            .await
            .expect("canary table");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(true)
            .connect(&db.url)
            .await
            .expect("pool");
        let store = Store::from_pool(pool.clone());
        OneConnection { db, pool, store }
    }

    /// Writes `step` to the canary table on the one connection, in a statement of its own
    /// outside any transaction (as an ingest batch writes), and says whether another
    /// connection sees it committed.
    async fn canary_committed(&self, step: u16) -> bool {
        sqlx::query("INSERT INTO committed_canary (step) VALUES ($1)")
            .bind(i32::from(step))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("step {step}: canary insert: {e}"));
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM committed_canary WHERE step = $1)")
            .bind(i32::from(step))
            .fetch_one(&self.db.pool)
            .await
            .expect("canary read")
    }
}

#[tokio::test]
async fn a_call_cancelled_while_its_transaction_begins_leaves_no_transaction_open() {
    let one = OneConnection::new().await;
    // The alert engine's claim begins a transaction; cancel it after delays that sweep the
    // connection's acquisition, its BEGIN's round trip and the rest of the call.
    let mut completed = 0;
    for step in 0..400_u16 {
        let delay = Duration::from_micros(u64::from(step) * 5);
        let claim = one.store.claim_followups(chronicle_alerts::CONSUMER, 10);
        if let Ok(result) = tokio::time::timeout(delay, claim).await {
            result.expect("claim");
            completed += 1;
        }
        assert!(
            one.canary_committed(step).await,
            "step {step} (claim cancelled after {delay:?}): a statement that reported success \
             was not committed; the connection was left inside the cancelled call's transaction"
        );
    }
    // The sweep ran from cancelling every call to letting calls finish.
    assert!(
        completed > 0 && completed < 400,
        "{completed} of 400 completed"
    );
}

/// An ingest batch large enough to send its glucose readings by COPY, cancelled at every point
/// of its write: the connection it used is never left inside the COPY or its transaction, and
/// a batch either committed whole or not at all.
#[tokio::test]
async fn a_batch_cancelled_while_its_readings_are_copied_leaves_the_connection_usable() {
    let one = OneConnection::new().await;
    let setup = Store::from_pool(one.db.pool.clone());
    let first_at = chrono::Utc::now() - chrono::Duration::days(1);
    // COPY takes only batches with many readings a device: 20 devices, 30 readings each.
    let patients = 20;
    let readings_per_device = 30_u16;
    let devices =
        population_with_a_reading_each(&setup, patients, "copy", first_at, |_| 120.0, &[]).await;
    let ids: Vec<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
    let keys = setup.devices_for_ingest(&ids).await.expect("device keys");
    let senders: Vec<_> = devices
        .iter()
        .flat_map(|device| std::iter::repeat_n(device.clone(), readings_per_device.into()))
        .collect();
    let batch_size = senders.len();

    let mut completed = 0;
    let steps = 300_u16;
    for step in 0..steps {
        let at = first_at + chrono::Duration::minutes(i64::from(step) + 1);
        let readings: Vec<Reading> = devices
            .iter()
            .flat_map(|_| {
                (0..readings_per_device)
                    .map(move |n| cgm_glucose(at + chrono::Duration::seconds(n.into()), 110.0))
            })
            .collect();
        let batch = batch_for(&senders, &keys, &readings, &[]);
        let delay = Duration::from_micros(u64::from(step) * 100);
        if let Ok(result) = tokio::time::timeout(delay, one.store.write_batch(&batch)).await {
            result.expect("batch written");
            completed += 1;
        }
        assert!(
            one.canary_committed(step).await,
            "step {step} (cancelled after {delay:?}): a statement that reported success was not \
             committed"
        );
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM glucose_samples \
             WHERE measured_at >= $1 AND measured_at < $1 + interval '1 minute'",
        )
        .bind(at)
        .fetch_one(&one.db.pool)
        .await
        .expect("stored readings");
        // A cancelled batch may still commit (its task runs on), but never in part.
        assert!(
            stored == 0 || stored == i64::try_from(batch_size).expect("small"),
            "step {step}: {stored} of the batch's {batch_size} readings stored"
        );
    }
    assert!(
        completed > 0 && completed < steps,
        "{completed} of {steps} completed"
    );
}
