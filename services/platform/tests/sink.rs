//! The sink's record of taken events against a real PostgreSQL database, as a service's
//! runtime role.

use std::time::Duration;

use zvv_devkit::testkit::{TestDb, service_pool};
use zvv_platform::{db::Schema, sink};

const SCHEMA: Schema = Schema::new("sinktest");

#[tokio::test]
async fn an_event_is_taken_once_and_forgotten_after_the_period() {
    let db = TestDb::create().await.expect("test database");
    let (pool, _roles) = service_pool(&db, SCHEMA, 4, |owner| async move {
        zvv_platform::db::migrate(
            &owner,
            SCHEMA,
            sqlx::migrate::Migrator::with_migrations(vec![]),
        )
        .await
    })
    .await
    .expect("migrated pool");
    let event = zvv_platform::ids::new_id();

    let mut tx = pool.begin().await.expect("begin");
    assert!(
        sink::first_delivery(&mut tx, SCHEMA, event)
            .await
            .expect("first")
    );
    assert!(
        !sink::first_delivery(&mut tx, SCHEMA, event)
            .await
            .expect("again"),
        "a second delivery in the same transaction is a duplicate"
    );
    tx.rollback().await.expect("rollback");

    // a rolled-back delivery was not taken
    let mut tx = pool.begin().await.expect("begin");
    assert!(
        sink::first_delivery(&mut tx, SCHEMA, event)
            .await
            .expect("taken now")
    );
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    assert!(
        !sink::first_delivery(&mut tx, SCHEMA, event)
            .await
            .expect("duplicate")
    );
    tx.rollback().await.expect("rollback");

    assert_eq!(
        sink::purge_consumed(&pool, SCHEMA, Duration::from_secs(3600))
            .await
            .expect("purge"),
        0,
        "recent ones are kept"
    );
    let admin = zvv_platform::db::connect(db.options.clone(), &Default::default())
        .await
        .expect("admin");
    sqlx::query("UPDATE sinktest.consumed_events SET consumed_at = now() - interval '2 hours'")
        .execute(&admin)
        .await
        .expect("age");
    assert_eq!(
        sink::purge_consumed(&pool, SCHEMA, Duration::from_secs(3600))
            .await
            .expect("purge"),
        1
    );
}
