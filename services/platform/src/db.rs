//! The database: a connection pool, and one Postgres schema per service with its own migration
//! history. Migrations run at start under sqlx's advisory lock, so replicas starting together are
//! safe. The platform's own tables (audit log, outbox, idempotency keys) are created in every
//! service's schema by a second, separately tracked migration set.

use std::{borrow::Cow, time::Duration};

use sqlx::{
    AssertSqlSafe, PgPool,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A service's schema name: lowercase letters and underscores, known at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema(&'static str);

impl Schema {
    /// Panics at start-up (in a const context: at compile time) on a name that is not a plain
    /// lowercase identifier, so that it is safe to splice into SQL.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= 48, "schema name length");
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                bytes[i].is_ascii_lowercase() || bytes[i] == b'_',
                "schema name must be lowercase letters and underscores"
            );
            i += 1;
        }
        Self(name)
    }

    pub fn name(&self) -> &'static str {
        self.0
    }

    /// SQL with every `{schema}` replaced by this schema's name.
    pub fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(template.replace("{schema}", self.0))
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens a pool. Connections are not pinged before each use (a broken one fails its query,
/// which answers UNAVAILABLE); that saves a round trip on every call.
pub async fn connect(
    options: PgConnectOptions,
    settings: &PoolSettings,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(options.application_name("zvv"))
        .await
}

/// Closes the idle connections of `pool` that no longer answer a ping (within 1 s each), so
/// that after a database outage calls do not fail one by one on connections the server has
/// dropped (the pool does not ping before each use). Returns how many it closed.
pub async fn sweep_idle(pool: &PgPool) -> usize {
    use sqlx::Connection;
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..pool.num_idle() {
        let Some(mut conn) = pool.try_acquire() else {
            break;
        };
        let alive = tokio::time::timeout(Duration::from_secs(1), conn.ping()).await;
        if matches!(alive, Ok(Ok(()))) {
            // held until the sweep ends, so that try_acquire hands out the next idle one
            held.push(conn);
        } else {
            conn.close_on_drop();
            closed += 1;
        }
    }
    drop(held);
    closed
}

/// Whether `name` is a plain role name that is safe to splice into SQL.
fn plain_role(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Gives the service's runtime role what it needs in `schema` and no more: reading and writing
/// the service's tables, but only adding and reading audit rows and key records (no UPDATE,
/// DELETE or TRUNCATE;
/// triggers and table definitions belong to the owner that runs this). Idempotent: run it after
/// every migration.
pub async fn grant_runtime(
    owner: &PgPool,
    schema: Schema,
    runtime_role: &str,
) -> Result<(), sqlx::Error> {
    if !plain_role(runtime_role) {
        return Err(sqlx::Error::Configuration(
            format!("runtime role {runtime_role:?} must be lowercase letters, digits and _").into(),
        ));
    }
    let s = schema.name();
    let r = runtime_role;
    let audit = AUDIT_TABLES
        .iter()
        .chain(&["audit_log"])
        .map(|t| format!("{s}.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let statements = [
        format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit} FROM {r}"),
        // key records are added and read, never changed
        format!(
            "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {s}.service_keys FROM {r}"
        ),
        format!("REVOKE ALL ON {s}._sqlx_migrations, {s}._platform_migrations FROM {r}"),
        // read only: a replica checks at start that the owner applied every migration
        format!("GRANT SELECT ON {s}._sqlx_migrations, {s}._platform_migrations TO {r}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}"),
    ];
    for sql in statements {
        sqlx::query(AssertSqlSafe(sql)).execute(owner).await?;
    }
    Ok(())
}

const PLATFORM_TABLES: &str = r#"
CREATE TABLE {schema}.audit_log (
    seq            bigint      PRIMARY KEY,
    occurred_at    timestamptz NOT NULL,
    action         text        NOT NULL,
    object_ids     uuid[]      NOT NULL,
    result         text        NOT NULL,
    actor_sub      text        NOT NULL,
    actor_org      text        NOT NULL,
    actor_org_type text        NOT NULL,
    actor_roles    text        NOT NULL,
    peer           text        NOT NULL,
    legal_basis    text        NOT NULL,
    trace_id       text        NOT NULL,
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL
);

CREATE FUNCTION {schema}.audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON {schema}.audit_log
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {schema}.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_log_is_append_only();

CREATE TABLE {schema}.outbox (
    event_id     uuid        PRIMARY KEY,
    event_type   text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    ids          jsonb       NOT NULL,
    codes        jsonb       NOT NULL,
    trace_id     text        NOT NULL,
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unpublished ON {schema}.outbox (occurred_at) WHERE published_at IS NULL;

CREATE TABLE {schema}.idempotency (
    scope       text        NOT NULL,
    request_id  text        NOT NULL,
    fingerprint bytea       NOT NULL,
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, request_id)
);
"#;

/// Audit records name the end user a suite service called on behalf of (NEN 7513).
const AUDIT_END_USER: &str = r#"
ALTER TABLE {schema}.audit_log
    ADD COLUMN end_user_sub      text NOT NULL DEFAULT '',
    ADD COLUMN end_user_org      text NOT NULL DEFAULT '',
    ADD COLUMN end_user_org_type text NOT NULL DEFAULT '',
    ADD COLUMN end_user_roles    text NOT NULL DEFAULT '';
"#;

/// The audit log of the sealed design: entries appended without a lock, seals that chain them
/// behind, signed checkpoints of the chain head. No production data exist in the old table, so it
/// is replaced, not carried over. `audit_log` stays as a view for reading.
const AUDIT_SEALED: &str = r#"
DROP TABLE {schema}.audit_log;
DROP FUNCTION {schema}.audit_log_is_append_only();

CREATE FUNCTION {schema}.audit_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE {schema}.audit_entries (
    entry_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid              xid8        NOT NULL DEFAULT pg_current_xact_id(),
    written_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    occurred_at       timestamptz NOT NULL,
    action            text        NOT NULL,
    object_ids        uuid[]      NOT NULL,
    result            text        NOT NULL,
    actor_sub         text        NOT NULL,
    actor_org         text        NOT NULL,
    actor_org_type    text        NOT NULL,
    actor_roles       text        NOT NULL,
    end_user_sub      text        NOT NULL,
    end_user_org      text        NOT NULL,
    end_user_org_type text        NOT NULL,
    end_user_roles    text        NOT NULL,
    peer              text        NOT NULL,
    legal_basis       text        NOT NULL,
    trace_id          text        NOT NULL
);
CREATE INDEX audit_entries_in_seal_order ON {schema}.audit_entries (txid, entry_id);

-- horizon: every transaction with a smaller id had ended when this seal was made, and its
-- entries were sealed by then; the next round scans from here
CREATE TABLE {schema}.audit_seals (
    seq       bigint      PRIMARY KEY,
    entry_id  bigint      NOT NULL UNIQUE,
    horizon   xid8        NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE {schema}.audit_checkpoints (
    seq       bigint      NOT NULL,
    head_hash bytea       NOT NULL,
    signed_at timestamptz NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL,
    PRIMARY KEY (seq, key_id)
);

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON {schema}.audit_entries
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_is_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON {schema}.audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_is_append_only();
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON {schema}.audit_seals
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_is_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON {schema}.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_is_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON {schema}.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_is_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON {schema}.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_is_append_only();

-- one row per entry in the order it was written, with its seal once it has one
CREATE VIEW {schema}.audit_log AS
    SELECT e.entry_id AS seq, e.occurred_at, e.action, e.object_ids, e.result, e.actor_sub,
           e.actor_org, e.actor_org_type, e.actor_roles, e.end_user_sub, e.end_user_org,
           e.end_user_org_type, e.end_user_roles, e.peer, e.legal_basis, e.trace_id,
           s.seq AS sealed_seq, s.sealed_at, e.written_at
      FROM {schema}.audit_entries e LEFT JOIN {schema}.audit_seals s USING (entry_id);
"#;

/// Events name their audience; the relay publishes them in order, retrying with backoff; sinks
/// remember the events they took.
const OUTBOX_RELAY: &str = r#"
ALTER TABLE {schema}.outbox
    ADD COLUMN audience_organisations  text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN audience_municipalities text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN next_attempt_at         timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error              text;

-- the relay reads the unpublished events in (occurred_at, event_id) order; the purge finds the
-- published ones by age
DROP INDEX {schema}.outbox_unpublished;
CREATE INDEX outbox_unpublished_in_order ON {schema}.outbox (occurred_at, event_id)
    WHERE published_at IS NULL;
CREATE INDEX outbox_published ON {schema}.outbox (published_at)
    WHERE published_at IS NOT NULL;

-- the events an EventSink of this service has taken (a redelivery is a duplicate)
CREATE TABLE {schema}.consumed_events (
    event_id    uuid        PRIMARY KEY,
    consumed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consumed_events_by_age ON {schema}.consumed_events (consumed_at);
"#;

/// The audit tables, whose rows the runtime role may only add and read.
pub const AUDIT_TABLES: [&str; 3] = ["audit_entries", "audit_seals", "audit_checkpoints"];

fn platform_migrator(schema: Schema) -> Migrator {
    let migration = |version, description: &'static str, sql: &str| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(schema.sql(sql)),
            false,
        )
    };
    let mut migrator = Migrator::with_migrations(vec![
        migration(
            1,
            "platform tables: audit log, outbox, idempotency",
            PLATFORM_TABLES,
        ),
        migration(2, "audit records name the end user", AUDIT_END_USER),
        migration(3, "audit entries sealed behind the writers", AUDIT_SEALED),
        migration(4, "key records", crate::keys::KEY_RECORDS_TABLE),
        migration(
            5,
            "outbox audience and relay state, consumed events",
            OUTBOX_RELAY,
        ),
    ]);
    migrator.dangerous_set_table_name(format!("{}._platform_migrations", schema.name()));
    migrator.create_schema(schema.name());
    migrator
}

/// Creates the schema if needed and applies the platform's and then the service's migrations,
/// each tracked in its own table inside the schema. When every one is applied already (with its
/// checksum) nothing is locked or created: a replica that serves as the runtime role, after an
/// init container migrated as the owner, starts without the owner's credentials (the runtime role
/// may read the migration tables, not change them).
pub async fn migrate(
    pool: &PgPool,
    schema: Schema,
    mut service: Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    let platform = platform_migrator(schema);
    service.dangerous_set_table_name(format!("{}._sqlx_migrations", schema.name()));
    service.create_schema(schema.name());
    if applied(pool, schema, "_platform_migrations", &platform).await?
        && applied(pool, schema, "_sqlx_migrations", &service).await?
    {
        tracing::info!(schema = schema.name(), "migrations applied already");
        return Ok(());
    }
    platform.run(pool).await?;
    service.run(pool).await?;
    tracing::info!(schema = schema.name(), "migrations applied");
    Ok(())
}

/// Whether every migration of `migrator` is recorded as applied, with its checksum, in
/// `schema.table` (read only; a missing schema or table, or no right to read it, is "no").
async fn applied(
    pool: &PgPool,
    schema: Schema,
    table: &str,
    migrator: &Migrator,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT version, checksum FROM {}.{table} WHERE success",
        schema.name()
    );
    let rows: Vec<(i64, Vec<u8>)> = match sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await {
        Ok(rows) => rows,
        // undefined table, undefined schema, insufficient privilege
        Err(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("42P01" | "3F000" | "42501")) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .all(|m| {
            rows.iter()
                .any(|(v, c)| *v == m.version && c.as_slice() == m.checksum.as_ref())
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_sql_is_qualified() {
        const S: Schema = Schema::new("intake");
        assert_eq!(
            S.sql("SELECT 1 FROM {schema}.x").0,
            "SELECT 1 FROM intake.x"
        );
    }

    #[test]
    #[should_panic(expected = "lowercase")]
    fn schema_names_are_checked() {
        let _ = Schema::new("intake; DROP TABLE x");
    }
}
