//! The PostgreSQL store (schema `signalling`): a file per aggregate, the helpers they share here.

mod events;
mod matches;
mod referrals;
mod retention;
mod signals;
mod statistics;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    db::Schema,
    error::ApiError,
    idempotency::{self, Key},
    outbox::{self, Event},
};

use crate::domain::{CloseReason, Contact, Signal, SignalStatus};

pub const SCHEMA: Schema = Schema::new("signalling");

/// The PostgreSQL store of signals, matches and referrals.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type Tx = Transaction<'static, Postgres>;

const SIGNAL_COLUMNS: &str = "s.signal_id, s.subject_id, s.organisation, s.organisation_type, \
    s.contact_name, s.contact_phone, s.contact_email, s.registered_on, s.duration_months, \
    s.expires_on, s.status, s.close_reason, s.closed_at, s.parents_informed_on, \
    s.child_informed_on, s.postponement_reason, s.birth_date, s.municipality_code, \
    s.neighbourhood_code, s.created_at";

fn signal_from_row(row: &PgRow) -> Result<Signal, ApiError> {
    let status: String = row.try_get("status")?;
    let reason: Option<String> = row.try_get("close_reason")?;
    let months: i32 = row.try_get("duration_months")?;
    Ok(Signal {
        id: row.try_get("signal_id")?,
        subject_id: row.try_get("subject_id")?,
        organisation: row.try_get("organisation")?,
        organisation_type: row.try_get("organisation_type")?,
        contact: Contact {
            name: row.try_get("contact_name")?,
            phone: row.try_get("contact_phone")?,
            email: row.try_get("contact_email")?,
        },
        registered_on: row.try_get("registered_on")?,
        duration_months: u32::try_from(months).map_err(ApiError::internal)?,
        expires_on: row.try_get("expires_on")?,
        status: SignalStatus::parse(&status)
            .ok_or_else(|| ApiError::internal(format!("stored signal status {status:?}")))?,
        close_reason: reason.as_deref().and_then(CloseReason::parse),
        closed_at: row.try_get("closed_at")?,
        parents_informed_on: row.try_get("parents_informed_on")?,
        child_informed_on: row.try_get("child_informed_on")?,
        postponement_reason: row.try_get("postponement_reason")?,
        birth_date: row.try_get("birth_date")?,
        municipality_code: row.try_get("municipality_code")?,
        neighbourhood_code: row.try_get("neighbourhood_code")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A signal of `organisation`, locked for the transaction when `lock`.
async fn fetch_signal(
    conn: &mut PgConnection,
    organisation: &str,
    id: Uuid,
    lock: bool,
) -> Result<Option<Signal>, ApiError> {
    let sql = format!(
        "SELECT {SIGNAL_COLUMNS} FROM signalling.signals s WHERE s.signal_id = $1 AND s.organisation = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(organisation)
        .fetch_optional(conn)
        .await?
        .map(|r| signal_from_row(&r))
        .transpose()
}

async fn emit(conn: &mut PgConnection, event: Event, at: DateTime<Utc>) -> Result<(), ApiError> {
    outbox::append(conn, SCHEMA, &event, at).await?;
    Ok(())
}

/// Commits a successful call with its audit record.
async fn commit(
    tx: Tx,
    ctx: &CallContext,
    ids: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    audit::commit(tx, SCHEMA, ctx, ids, "OK", now).await?;
    Ok(())
}

/// Rolls back a call that failed; the call layer audits it.
async fn abandon(tx: Tx) -> Result<(), ApiError> {
    tx.rollback().await?;
    Ok(())
}

/// Serialises all changes that concern these subjects (in this order), so that two
/// organisations registering at the same moment produce exactly one match. One round trip.
async fn lock_subjects(conn: &mut PgConnection, subjects: &[Uuid]) -> Result<(), ApiError> {
    if subjects.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('zvv.signalling.subject.' || s.id::text)) \
         FROM unnest($1::uuid[]) AS s(id)",
    )
    .bind(subjects)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first response stored under `key`, if any; locks the key for the transaction.
async fn first_response<T: DeserializeOwned>(
    conn: &mut PgConnection,
    key: &Key,
) -> Result<Option<T>, ApiError> {
    idempotency::first_response(conn, SCHEMA, key).await
}

/// Stores the response of a successful call under its key, in its transaction.
async fn remember<T: Serialize>(
    conn: &mut PgConnection,
    key: &Key,
    response: &T,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    idempotency::remember(conn, SCHEMA, key, response, now).await
}
