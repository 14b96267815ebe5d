//! `--migrate-only` (ZVV_MIGRATE_ONLY) against a real PostgreSQL database: the owner migrates
//! and grants the runtime role, nothing is served, and the runtime role then works as it does
//! after a normal start.

use clap::Parser;
use sqlx::{
    Connection,
    migrate::{Migration, MigrationType, Migrator},
};
use zvv_devkit::testkit::TestDb;
use zvv_platform::{
    config::{DbArgs, Opened},
    db::Schema,
};

const SCHEMA: Schema = Schema::new("migonly");

#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    db: DbArgs,
}

async fn migrate(owner: sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let things = Migration::new(
        1,
        "things".into(),
        MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(
            SCHEMA.sql("CREATE TABLE {schema}.things (id bigint PRIMARY KEY, name text NOT NULL)"),
        ),
        false,
    );
    zvv_platform::db::migrate(&owner, SCHEMA, Migrator::with_migrations(vec![things])).await
}

#[tokio::test]
async fn migrate_only_migrates_grants_and_serves_nothing() {
    let db = TestDb::create().await.expect("test database");
    let roles = db.service_roles(SCHEMA.name()).await.expect("roles");
    let args = Args::try_parse_from([
        "x",
        "--database-url",
        &roles.runtime_url,
        "--migration-database-url",
        &roles.owner_url,
        "--migrate-only",
    ])
    .unwrap();
    assert!(args.db.migrate_only);
    let opened = args.db.open(SCHEMA, migrate).await.expect("migrated");
    assert!(matches!(opened, Opened::Migrated), "{opened:?}");

    // the owner owns the tables; the runtime role may use them as granted
    let mut owner = sqlx::PgConnection::connect_with(&roles.owner)
        .await
        .unwrap();
    let table_owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'migonly' AND tablename = 'things'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(table_owner, roles.owner_role);
    owner.close().await.unwrap();
    let mut runtime = sqlx::PgConnection::connect_with(&roles.runtime)
        .await
        .unwrap();
    sqlx::query("INSERT INTO migonly.things (id, name) VALUES (1, 'a')")
        .execute(&mut runtime)
        .await
        .expect("the runtime role writes the service's tables");
    // the migration tables: read only
    sqlx::query("SELECT count(*) FROM migonly._sqlx_migrations")
        .execute(&mut runtime)
        .await
        .expect("the runtime role reads which migrations are applied");
    let denied = sqlx::query("DELETE FROM migonly._sqlx_migrations")
        .execute(&mut runtime)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    let denied = sqlx::query("DELETE FROM migonly.audit_entries")
        .execute(&mut runtime)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    runtime.close().await.unwrap();

    // the replicas start as before: the migrations are a no-op, the pool is the runtime role's
    let args = Args::try_parse_from([
        "x",
        "--database-url",
        &roles.runtime_url,
        "--migration-database-url",
        &roles.owner_url,
    ])
    .unwrap();
    assert!(!args.db.migrate_only);
    let Opened::Serve(pool) = args.db.open(SCHEMA, migrate).await.expect("opened") else {
        panic!("a pool to serve with");
    };
    let (user, things): (String, i64) =
        sqlx::query_as("SELECT current_user::text, (SELECT count(*) FROM migonly.things)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(user, roles.runtime_role);
    assert_eq!(things, 1);
    pool.close().await;
}

#[tokio::test]
async fn a_replica_serves_as_the_runtime_role_without_the_owners_credentials() {
    let db = TestDb::create().await.expect("test database");
    let roles = db.service_roles(SCHEMA.name()).await.expect("roles");
    // before the init container: the runtime role cannot migrate, the start fails clearly
    let runtime_only = Args::try_parse_from(["x", "--database-url", &roles.runtime_url]).unwrap();
    let refused = runtime_only
        .db
        .open(SCHEMA, migrate)
        .await
        .expect_err("nothing migrated, no owner");
    assert!(refused.contains("migrations"), "{refused}");
    // the init container migrates as the owner
    let init = Args::try_parse_from([
        "x",
        "--database-url",
        &roles.runtime_url,
        "--migration-database-url",
        &roles.owner_url,
        "--migrate-only",
    ])
    .unwrap();
    assert!(matches!(
        init.db.open(SCHEMA, migrate).await.expect("migrated"),
        Opened::Migrated
    ));
    // the serving container has only the runtime role's URL
    let Opened::Serve(pool) = runtime_only.db.open(SCHEMA, migrate).await.expect("serves") else {
        panic!("a pool to serve with");
    };
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(user, roles.runtime_role);
    // and it changed nothing: the owner still owns every table of the schema
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'migonly'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(owners, vec![roles.owner_role.clone()]);
    pool.close().await;
}
