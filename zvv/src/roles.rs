//! Database roles of the services that `zvv up` runs: per service an owner role that runs the
//! migrations and owns the tables, and a runtime role for the service's connections that may
//! only add and read audit rows. Created by the administrative connection of `zvv up` (the
//! private cluster's superuser, or the `DATABASE_URL` user when it may create roles).

use anyhow::Context;
use rand::RngCore;
use sqlx::{AssertSqlSafe, PgPool, postgres::PgConnectOptions};
use zvv_platform::db::Schema;

/// The two connections of one service.
#[derive(Debug, Clone)]
pub struct ServiceRoles {
    pub owner: PgConnectOptions,
    pub runtime: PgConnectOptions,
    pub runtime_role: String,
}

fn password() -> String {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    hex::encode(secret)
}

/// Creates (or refreshes the passwords of) the roles `zvv_<schema>_owner` and `zvv_<schema>` in
/// the database of `admin`, and hands an existing schema (from an earlier run without roles) to
/// the owner. `base` is the administrative connection's options (host, port, database).
pub async fn ensure(
    admin: &PgPool,
    base: &PgConnectOptions,
    database: &str,
    schema: Schema,
) -> anyhow::Result<ServiceRoles> {
    let owner = format!("zvv_{}_owner", schema.name());
    let runtime = format!("zvv_{}", schema.name());
    let (owner_password, runtime_password) = (password(), password());
    let s = schema.name();
    let statements = [
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{owner}') \
             THEN CREATE ROLE {owner} LOGIN; END IF; END $$"
        ),
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{runtime}') \
             THEN CREATE ROLE {runtime} LOGIN; END IF; END $$"
        ),
        format!("ALTER ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD '{owner_password}'"),
        format!(
            "ALTER ROLE {runtime} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD '{runtime_password}'"
        ),
        format!("GRANT CONNECT, CREATE ON DATABASE \"{database}\" TO {owner}"),
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO {runtime}"),
        // a schema made by an earlier run (as the administrator) now belongs to the owner
        format!(
            "DO $$ DECLARE r record; BEGIN \
               IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{s}') THEN \
                 EXECUTE 'ALTER SCHEMA {s} OWNER TO {owner}'; \
                 FOR r IN SELECT c.relname, c.relkind FROM pg_class c \
                          JOIN pg_namespace n ON n.oid = c.relnamespace \
                          WHERE n.nspname = '{s}' AND c.relkind IN ('r', 'v', 'p') LOOP \
                   EXECUTE format('ALTER %s {s}.%I OWNER TO {owner}', \
                                  CASE r.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, r.relname); \
                 END LOOP; \
                 FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p \
                          JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{s}' LOOP \
                   EXECUTE format('ALTER FUNCTION %s OWNER TO {owner}', r.f); \
                 END LOOP; \
               END IF; \
             END $$"
        ),
    ];
    for sql in statements {
        sqlx::query(AssertSqlSafe(sql))
            .execute(admin)
            .await
            .with_context(|| format!("creating the database roles of {s}"))?;
    }
    Ok(ServiceRoles {
        owner: base.clone().username(&owner).password(&owner_password),
        runtime: base.clone().username(&runtime).password(&runtime_password),
        runtime_role: runtime,
    })
}
