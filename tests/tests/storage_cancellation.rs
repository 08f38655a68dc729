//! Storage calls cancelled part-way, as shutdown, a client hanging up or a timeout cancels
//! them: no connection goes back to the pool inside a transaction. If one did, every later
//! statement on it (an ingest batch included) would run inside that transaction, report
//! success, and be discarded when the connection closes.

use chronicle_storage::Store;
use chronicle_tests::TestDatabase;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

#[tokio::test]
async fn a_call_cancelled_while_its_transaction_begins_leaves_no_transaction_open() {
    let db = TestDatabase::create().await.expect("database");
    let setup = Store::from_pool(db.pool.clone());
    setup.migrate().await.expect("migrations");
    sqlx::query("CREATE TABLE committed_canary (step int PRIMARY KEY)")
        .execute(&db.pool)
        .await
        .expect("canary table");
    // One connection, so each statement below runs on the connection the cancelled call used.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(true)
        .connect(&db.url)
        .await
        .expect("pool");
    let store = Store::from_pool(pool.clone());
    // The alert engine's claim begins a transaction; cancel it after delays that sweep the
    // connection's acquisition, its BEGIN's round trip and the rest of the call.
    let mut completed = 0;
    for step in 0..400_u16 {
        let delay = Duration::from_micros(u64::from(step) * 5);
        let claim = store.claim_followups(chronicle_alerts::CONSUMER, 10);
        if let Ok(result) = tokio::time::timeout(delay, claim).await {
            result.expect("claim");
            completed += 1;
        }
        // A statement of its own, outside any transaction, as an ingest batch writes.
        sqlx::query("INSERT INTO committed_canary (step) VALUES ($1)")
            .bind(i32::from(step))
            .execute(&pool)
            .await
            .expect("canary insert");
        let seen_elsewhere: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM committed_canary WHERE step = $1)")
                .bind(i32::from(step))
                .fetch_one(&db.pool)
                .await
                .expect("canary read");
        assert!(
            seen_elsewhere,
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
