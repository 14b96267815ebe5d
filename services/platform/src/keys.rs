//! Key records: which keys a service's data was written with.
//!
//! A service that keeps data under a key (intake's BSN encryption and lookup keys, signalling's
//! request fingerprint key) records in its own schema, in `{schema}.service_keys`, each key it
//! uses: its purpose, its id and a keyed check value ([`check_value`]: an HMAC under the key of a
//! fixed text, never the key and never an unkeyed hash of it). At every start [`check`] compares
//! the configured keys with the records, under an advisory lock so that replicas starting
//! together agree:
//!
//! - a recorded key must be configured with the same check value; a recorded key that is not
//!   configured any more is refused while the service still needs it
//!   ([`ServiceData::still_needed`]: for intake, while a subject is sealed with it);
//! - a configured key that is not recorded is recorded (a rotation adds keys), except when its
//!   purpose has no record yet and the schema already holds data (a database from before the
//!   records were kept, or whose records were removed): then the keys are recorded only if they
//!   read that data ([`ServiceData::probe`]), otherwise the service refuses to start.
//!
//! So a new data folder against an existing database, or a deployment with the wrong key secret,
//! stops with an error that names the recorded and the configured key ids, instead of writing new
//! data under new keys next to data nobody can read any more.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool, Row};

pub use futures::future::BoxFuture;

use crate::db::Schema;

/// The fixed text whose HMAC under a key is its check value.
pub const CHECK_CONTEXT: &str = "zvv.key-check.v1";

/// The check value of `key`: HMAC-SHA256 under the key of [`CHECK_CONTEXT`] (and a zero byte).
/// Equal keys give equal values; without the key nobody can compute it, and it tells nothing
/// about the key.
pub fn check_value(key: &[u8]) -> Vec<u8> {
    crate::bsn::keyed_hmac(key, CHECK_CONTEXT, &[])
}

/// A key as the service is configured with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredKey {
    /// What the key is for, e.g. `bsn-encryption`.
    pub purpose: &'static str,
    pub key_id: String,
    /// [`check_value`] of the key.
    pub check: Vec<u8>,
}

/// A key as recorded in the service's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    pub purpose: String,
    pub key_id: String,
    pub check: Vec<u8>,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// What a schema holds that the keys protect, as far as the service can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Nothing the keys protect.
    Empty,
    /// Data that the configured keys were checked to read.
    Readable,
    /// Data that cannot be checked against the keys (why); its keys are recorded with a warning.
    /// For data whose loss under a wrong key is bounded (signalling's idempotency keys, purged
    /// after a day), never for data that would become unreadable.
    Unverifiable(String),
    /// Data that the configured keys cannot read (why, without any personal data).
    Unreadable(String),
}

/// What a service tells the key check about its data.
pub trait ServiceData: Send + Sync {
    /// What the schema holds; asked only when a configured key's purpose has no record yet.
    fn probe<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<Existing, sqlx::Error>>;

    /// Why a recorded key that is not configured any more is still needed (e.g. "12 subjects
    /// are sealed with it"), or `None` when nothing needs it. By default every recorded key is.
    fn still_needed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        key: &'a RecordedKey,
    ) -> BoxFuture<'a, Result<Option<String>, sqlx::Error>> {
        let _ = (conn, key);
        Box::pin(async { Ok(Some("it is recorded for this service".to_owned())) })
    }
}

/// How [`check`] treats configured keys that are not recorded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At start: records them (a rotation adds keys; see the module documentation).
    Record,
    /// Before a job that writes under the keys (re-encryption): refuses them, so that data is
    /// written only under keys every replica was started with.
    Verify,
}

/// What [`check`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The keys recorded by this check (purpose, id).
    pub recorded: Vec<(String, String)>,
    /// Recorded keys that are not configured any more and that nothing needs (purpose, id).
    pub unused: Vec<(String, String)>,
}

/// Why [`check`] refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The configured keys are not the ones the schema's data was written with.
    #[error(
        "{service}: the configured keys are not the keys its database was written with:\n{}\n  \
         expected (recorded in {schema}.service_keys): {}\n  configured: {}\n\
         Restore the key file these keys were recorded from, or point {service} at the database \
         that belongs to this key file. New keys are never created for a database that holds data.",
        bullets(.problems), names(.expected), names(.configured)
    )]
    Refused {
        service: String,
        schema: &'static str,
        problems: Vec<String>,
        /// The recorded keys (purpose, id).
        expected: Vec<(String, String)>,
        /// The configured keys (purpose, id).
        configured: Vec<(String, String)>,
    },
    /// [`Mode::Verify`]: keys that no running service has recorded yet.
    #[error(
        "{service}: the keys {} are not recorded in {schema}.service_keys yet: start {service} \
         with this key file first (every replica must know a key before data is written under it)",
        names(.keys)
    )]
    NotRecorded {
        service: String,
        schema: &'static str,
        keys: Vec<(String, String)>,
    },
    #[error("{service}: checking the key records in schema {schema}: {source}")]
    Database {
        service: String,
        schema: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

fn bullets(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn names(keys: &[(String, String)]) -> String {
    if keys.is_empty() {
        return "(none)".to_owned();
    }
    keys.iter()
        .map(|(purpose, id)| format!("{purpose} {id:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How one configured or recorded key compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// Configured and recorded with the same check value.
    Matches,
    /// Configured under a recorded id, but another key.
    Differs,
    /// Configured, not recorded.
    NotRecorded,
    /// Recorded, not configured.
    NotConfigured,
}

/// The configured and recorded keys side by side (purpose, id, status), recorded ones first in
/// their order, then the configured ones that are not recorded. For display and for [`check`].
pub fn compare(
    recorded: &[RecordedKey],
    configured: &[ConfiguredKey],
) -> Vec<(String, String, KeyStatus)> {
    let mut out = Vec::new();
    for r in recorded {
        let status = match configured
            .iter()
            .find(|c| c.purpose == r.purpose && c.key_id == r.key_id)
        {
            Some(c) if c.check == r.check => KeyStatus::Matches,
            Some(_) => KeyStatus::Differs,
            None => KeyStatus::NotConfigured,
        };
        out.push((r.purpose.clone(), r.key_id.clone(), status));
    }
    for c in configured {
        if !recorded
            .iter()
            .any(|r| r.purpose == c.purpose && r.key_id == c.key_id)
        {
            out.push((
                c.purpose.to_owned(),
                c.key_id.clone(),
                KeyStatus::NotRecorded,
            ));
        }
    }
    out
}

/// The key records table of a schema: a platform migration ([`crate::db::migrate`]); the
/// runtime role may only add and read its rows ([`crate::db::grant_runtime`]).
pub const KEY_RECORDS_TABLE: &str = "CREATE TABLE IF NOT EXISTS {schema}.service_keys (
    purpose     text        NOT NULL,
    key_id      text        NOT NULL,
    check_value bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purpose, key_id)
);
COMMENT ON TABLE {schema}.service_keys IS 'The keys this service''s data was written with: \
purpose, key id and a keyed check value (HMAC under the key of \"zvv.key-check.v1\"), never the \
key. The service refuses to start with other keys.';
";

/// Serialises key checks and table creation per schema, across replicas.
async fn lock(conn: &mut PgConnection, schema: Schema) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("zvv.keys.{}", schema.name()))
        .execute(conn)
        .await?;
    Ok(())
}

async fn table_exists(conn: &mut PgConnection, schema: Schema) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{}.service_keys", schema.name()))
        .fetch_one(conn)
        .await
}

/// The keys recorded in `schema`, by purpose and id; `None` when the table does not exist.
pub async fn recorded(
    pool: &PgPool,
    schema: Schema,
) -> Result<Option<Vec<RecordedKey>>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if !table_exists(&mut conn, schema).await? {
        return Ok(None);
    }
    read_records(&mut conn, schema).await.map(Some)
}

async fn read_records(
    conn: &mut PgConnection,
    schema: Schema,
) -> Result<Vec<RecordedKey>, sqlx::Error> {
    let rows = sqlx::query(schema.sql(
        "SELECT purpose, key_id, check_value, recorded_at FROM {schema}.service_keys \
         ORDER BY purpose, key_id",
    ))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordedKey {
                purpose: row.try_get("purpose")?,
                key_id: row.try_get("key_id")?,
                check: row.try_get("check_value")?,
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect()
}

/// Checks the configured keys of `service` against the records in `schema` and records new
/// ones (see the module documentation); one transaction under a per-schema advisory lock.
/// The schema's migrations must have run (they create the table).
pub async fn check(
    pool: &PgPool,
    schema: Schema,
    service: &str,
    configured: &[ConfiguredKey],
    data: &dyn ServiceData,
    mode: Mode,
) -> Result<Checked, KeyCheckError> {
    let db = |source: sqlx::Error| KeyCheckError::Database {
        service: service.to_owned(),
        schema: schema.name(),
        source,
    };
    let mut tx = pool.begin().await.map_err(db)?;
    lock(&mut tx, schema).await.map_err(db)?;
    let recorded = read_records(&mut tx, schema).await.map_err(db)?;
    let expected: Vec<(String, String)> = recorded
        .iter()
        .map(|r| (r.purpose.clone(), r.key_id.clone()))
        .collect();
    let configured_names: Vec<(String, String)> = configured
        .iter()
        .map(|c| (c.purpose.to_owned(), c.key_id.clone()))
        .collect();

    let mut problems = Vec::new();
    let mut unused = Vec::new();
    let mut new = Vec::new();
    for (purpose, key_id, status) in compare(&recorded, configured) {
        match status {
            KeyStatus::Matches => {}
            KeyStatus::Differs => problems.push(format!(
                "{purpose} key {key_id:?} is not the key recorded under that id"
            )),
            KeyStatus::NotConfigured => {
                let key = recorded
                    .iter()
                    .find(|r| r.purpose == purpose && r.key_id == key_id)
                    .unwrap_or_else(|| unreachable!("compare lists recorded keys"));
                match data.still_needed(&mut tx, key).await.map_err(db)? {
                    Some(why) => problems.push(format!(
                        "{purpose} key {key_id:?} is recorded but not configured, and {why}"
                    )),
                    None => unused.push((purpose, key_id)),
                }
            }
            KeyStatus::NotRecorded => new.push((purpose, key_id)),
        }
    }
    let refused = |problems: Vec<String>| KeyCheckError::Refused {
        service: service.to_owned(),
        schema: schema.name(),
        problems,
        expected: expected.clone(),
        configured: configured_names.clone(),
    };
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    if new.is_empty() {
        tx.commit().await.map_err(db)?;
        return Ok(Checked {
            recorded: Vec::new(),
            unused,
        });
    }
    if mode == Mode::Verify {
        return Err(KeyCheckError::NotRecorded {
            service: service.to_owned(),
            schema: schema.name(),
            keys: new,
        });
    }
    // a purpose without any record: the data (if any) must show these are its keys
    let recorded_purposes: BTreeSet<&str> = recorded.iter().map(|r| r.purpose.as_str()).collect();
    let first_of_purpose = new
        .iter()
        .any(|(purpose, _)| !recorded_purposes.contains(purpose.as_str()));
    if first_of_purpose {
        match data.probe(&mut tx).await.map_err(db)? {
            Existing::Empty | Existing::Readable => {}
            Existing::Unverifiable(why) => tracing::warn!(
                service,
                schema = schema.name(),
                keys = %names(&new),
                "recording keys that cannot be checked against the existing data: {why}"
            ),
            Existing::Unreadable(why) => {
                return Err(refused(vec![format!(
                    "the database holds data but no record of {}, and the configured keys \
                     cannot read that data: {why}",
                    names(&new)
                )]));
            }
        }
    }
    for (purpose, key_id) in &new {
        let check = configured
            .iter()
            .find(|c| c.purpose == purpose && &c.key_id == key_id)
            .map(|c| c.check.clone())
            .unwrap_or_else(|| unreachable!("compare lists configured keys"));
        sqlx::query(schema.sql(
            "INSERT INTO {schema}.service_keys (purpose, key_id, check_value) VALUES ($1, $2, $3) \
             ON CONFLICT (purpose, key_id) DO NOTHING",
        ))
        .bind(purpose)
        .bind(key_id)
        .bind(check)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    tracing::info!(service, schema = schema.name(), keys = %names(&new), "recorded the keys in use");
    Ok(Checked {
        recorded: new,
        unused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(purpose: &'static str, id: &str, key: &[u8]) -> ConfiguredKey {
        ConfiguredKey {
            purpose,
            key_id: id.to_owned(),
            check: check_value(key),
        }
    }

    fn recorded(purpose: &str, id: &str, key: &[u8]) -> RecordedKey {
        RecordedKey {
            purpose: purpose.to_owned(),
            key_id: id.to_owned(),
            check: check_value(key),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn check_values_are_keyed_and_stable() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert_eq!(check_value(&a), check_value(&a));
        assert_ne!(check_value(&a), check_value(&b));
        assert_eq!(check_value(&a).len(), 32);
        // not an unkeyed hash of the key or of the context
        use sha2::{Digest, Sha256};
        assert_ne!(check_value(&a), Sha256::digest(a).to_vec());
        assert_ne!(
            check_value(&a),
            Sha256::digest(CHECK_CONTEXT.as_bytes()).to_vec()
        );
        // the HMAC of the fixed text, as documented
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&a).unwrap();
        mac.update(b"zvv.key-check.v1\0");
        assert_eq!(check_value(&a), mac.finalize().into_bytes().to_vec());
    }

    #[test]
    fn compare_tells_every_case_apart() {
        let records = [
            recorded("bsn-encryption", "k1", &[1; 32]),
            recorded("bsn-encryption", "k2", &[2; 32]),
            recorded("bsn-lookup", "lookup-1", &[9; 32]),
        ];
        let keys = [
            configured("bsn-encryption", "k1", &[1; 32]),
            configured("bsn-encryption", "k3", &[3; 32]),
            configured("bsn-lookup", "lookup-1", &[8; 32]),
        ];
        let statuses: Vec<(String, String, KeyStatus)> = compare(&records, &keys);
        let view: Vec<(&str, &str, &KeyStatus)> = statuses
            .iter()
            .map(|(p, i, s)| (p.as_str(), i.as_str(), s))
            .collect();
        assert_eq!(
            view,
            [
                ("bsn-encryption", "k1", &KeyStatus::Matches),
                ("bsn-encryption", "k2", &KeyStatus::NotConfigured),
                ("bsn-lookup", "lookup-1", &KeyStatus::Differs),
                ("bsn-encryption", "k3", &KeyStatus::NotRecorded),
            ]
        );
    }

    #[test]
    fn the_refusal_names_expected_and_configured_keys_and_what_to_do() {
        let err = KeyCheckError::Refused {
            service: "intake".into(),
            schema: "intake",
            problems: vec![
                "bsn-lookup key \"lookup-1\" is not the key recorded under that id".into(),
            ],
            expected: vec![
                ("bsn-encryption".into(), "k1".into()),
                ("bsn-lookup".into(), "lookup-1".into()),
            ],
            configured: vec![
                ("bsn-encryption".into(), "dev-1".into()),
                ("bsn-lookup".into(), "lookup-1".into()),
            ],
        };
        let text = err.to_string();
        for part in [
            "intake.service_keys",
            "bsn-encryption \"k1\"",
            "bsn-encryption \"dev-1\"",
            "Restore the key file",
            "point intake at the database",
            "  - bsn-lookup key",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    }
}
