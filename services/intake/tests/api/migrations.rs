//! Migrations at start: several replicas starting together apply them once, each migration set
//! is tracked in its own table inside the `intake` schema, and nothing lands in `public`.

use std::time::Duration;

use zvv_devkit::testkit::TestDb;
use zvv_platform::db::{PoolSettings, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once_into_their_own_schema() {
    let db = TestDb::create().await.expect("database");
    let settings = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(30),
    };
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(connect(db.options.clone(), &settings).await.expect("pool"));
    }
    let (a, b, c) = tokio::join!(
        zvv_intake::migrate(&pools[0]),
        zvv_intake::migrate(&pools[1]),
        zvv_intake::migrate(&pools[2]),
    );
    for result in [a, b, c] {
        result.expect("every replica's migration run succeeds");
    }
    zvv_intake::migrate(&pools[0])
        .await
        .expect("a restart migrates again without error");

    let pool = &pools[0];
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM intake._sqlx_migrations")
        .fetch_one(pool)
        .await
        .expect("service migrations table");
    let local_migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations folder")
        .count();
    assert_eq!(
        applied as usize, local_migrations,
        "each migration applied once"
    );
    let platform: i64 = sqlx::query_scalar("SELECT count(*) FROM intake._platform_migrations")
        .fetch_one(pool)
        .await
        .expect("platform migrations table");
    assert_eq!(platform, 5, "the platform's five migrations, each once");
    let public: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(pool)
    .await
    .expect("public tables");
    assert_eq!(public, 0, "nothing in the public schema");
}
