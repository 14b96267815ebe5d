//! Retention: signals expire at their end date into the historical archive, archived signals
//! are destroyed after five years, everything about a subject is destroyed from their 23rd
//! birthday (when the birth date is known), and a decided referral is destroyed a retention
//! period (five years by default) after its decision whether or not a birth date is known. Runs
//! in batches under `FOR UPDATE SKIP LOCKED`, so any number of replicas may run it; every batch of
//! deletions leaves an audit record with the ids.

use chrono::{DateTime, Months, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    auth::{OrgType, Principal, Role},
    error::ApiError,
    outbox::{self, Event},
};

use crate::store::SCHEMA;

/// Years a closed or expired signal stays in the archive.
pub const ARCHIVE_YEARS: u32 = 5;
/// Age at which everything about a subject is destroyed.
pub const DESTROY_AT_AGE: u32 = 23;
/// Default months a decided referral is kept after its decision.
pub const DEFAULT_DECIDED_REFERRAL_MONTHS: u32 = 60;
const BATCH: i64 = 200;

/// The configurable periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRules {
    /// Months a decided referral is kept after its decision.
    pub decided_referral_months: u32,
}

impl Default for RetentionRules {
    fn default() -> Self {
        Self {
            decided_referral_months: DEFAULT_DECIDED_REFERRAL_MONTHS,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired: u64,
    pub archive_destroyed: u64,
    pub signals_destroyed_at_23: u64,
    pub referrals_destroyed_at_23: u64,
    pub decided_referrals_destroyed: u64,
}

fn job(action: &str) -> CallContext {
    let mut ctx = CallContext::new(format!("retention/{action}"), String::new(), String::new());
    ctx.principal = Some(Principal {
        sub: "retention-job".into(),
        org: "zvv-signalling".into(),
        org_type: OrgType::Suite,
        roles: vec![Role::Service],
        municipalities: Vec::new(),
    });
    ctx.legal_basis =
        "Jeugdwet art. 7.1.5.1-7.1.5.2: retention periods of the signalling index".into();
    ctx
}

async fn emit(conn: &mut PgConnection, event: Event, now: DateTime<Utc>) -> Result<(), ApiError> {
    outbox::append(conn, SCHEMA, &event, now).await?;
    Ok(())
}

/// Runs every retention rule once for `today`.
pub async fn run(
    pool: &PgPool,
    rules: &RetentionRules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<RetentionReport, ApiError> {
    let mut report = RetentionReport::default();
    loop {
        let n = expire_batch(pool, today, now).await?;
        report.expired += n;
        if n == 0 {
            break;
        }
    }
    let archive_cutoff = today
        .checked_sub_months(Months::new(12 * ARCHIVE_YEARS))
        .unwrap_or(NaiveDate::MIN);
    loop {
        let n = destroy_archived_batch(pool, archive_cutoff, now).await?;
        report.archive_destroyed += n;
        if n == 0 {
            break;
        }
    }
    let born_before = today
        .checked_sub_months(Months::new(12 * DESTROY_AT_AGE))
        .unwrap_or(NaiveDate::MIN);
    loop {
        let (signals, referrals) = destroy_aged_batch(pool, born_before, now).await?;
        report.signals_destroyed_at_23 += signals;
        report.referrals_destroyed_at_23 += referrals;
        if signals + referrals == 0 {
            break;
        }
    }
    let decided_before = now
        .checked_sub_months(Months::new(rules.decided_referral_months))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    loop {
        let n = destroy_decided_referrals_batch(pool, decided_before, now).await?;
        report.decided_referrals_destroyed += n;
        if n == 0 {
            break;
        }
    }
    sqlx::query(
        "DELETE FROM signalling.matches m WHERE m.status = 'CLOSED' \
         AND NOT EXISTS (SELECT 1 FROM signalling.match_signals ms WHERE ms.match_id = m.match_id)",
    )
    .execute(pool)
    .await?;
    Ok(report)
}

/// Active signals past their end date become EXPIRED (archived) and leave their matches.
async fn expire_batch(
    pool: &PgPool,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT signal_id, subject_id FROM signalling.signals WHERE status = 'ACTIVE' AND expires_on < $1 \
         ORDER BY expires_on LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(today)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = due.iter().map(|(s, _)| *s).collect();
    sqlx::query("UPDATE signalling.signals SET status = 'EXPIRED' WHERE signal_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    leave_matches(&mut tx, &ids, now).await?;
    for (signal, _) in &due {
        emit(
            &mut tx,
            Event::new("signalling.signal.expired").id("signal_id", *signal),
            now,
        )
        .await?;
    }
    let mut audited = ids.clone();
    audited.extend(due.iter().map(|(_, subject)| *subject));
    audit::commit(tx, SCHEMA, &job("expire-signals"), audited, "OK", now).await?;
    Ok(due.len() as u64)
}

/// Removes signals from their open matches and closes matches left with fewer than two
/// organisations (or, for family matches, fewer than two children).
async fn leave_matches(
    conn: &mut PgConnection,
    signals: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let left: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM signalling.match_signals ms USING signalling.matches m \
         WHERE ms.match_id = m.match_id AND ms.signal_id = ANY($1) AND m.status = 'OPEN' RETURNING ms.match_id",
    )
    .bind(signals)
    .fetch_all(&mut *conn)
    .await?;
    let closed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE signalling.matches m SET status = 'CLOSED', updated_at = $2 \
         WHERE m.match_id = ANY($1) AND m.status = 'OPEN' AND ( \
             (SELECT count(DISTINCT s.organisation) FROM signalling.match_signals ms \
              JOIN signalling.signals s ON s.signal_id = ms.signal_id WHERE ms.match_id = m.match_id) < 2 \
          OR (m.kind = 'FAMILY' AND (SELECT count(DISTINCT s.subject_id) FROM signalling.match_signals ms \
              JOIN signalling.signals s ON s.signal_id = ms.signal_id WHERE ms.match_id = m.match_id) < 2)) \
         RETURNING m.match_id",
    )
    .bind(&left)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for m in left.iter().filter(|m| !closed.contains(m)) {
        emit(
            conn,
            Event::new("signalling.match.updated").id("match_id", *m),
            now,
        )
        .await?;
    }
    for m in closed {
        emit(
            conn,
            Event::new("signalling.match.closed").id("match_id", m),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Archived (closed or expired) signals older than the archive period are destroyed.
async fn destroy_archived_batch(
    pool: &PgPool,
    cutoff: NaiveDate,
    now: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let mut tx = pool.begin().await?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT signal_id FROM signalling.signals WHERE status <> 'ACTIVE' \
         AND coalesce(closed_at::date, expires_on) < $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM signalling.signals WHERE signal_id = ANY($1)")
        .bind(&due)
        .execute(&mut *tx)
        .await?;
    audit::commit(
        tx,
        SCHEMA,
        &job("destroy-archived-signals"),
        due.clone(),
        "OK",
        now,
    )
    .await?;
    Ok(due.len() as u64)
}

/// Referrals decided before `decided_before` are destroyed, birth date known or not.
async fn destroy_decided_referrals_batch(
    pool: &PgPool,
    decided_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT referral_id, subject_id FROM signalling.referrals \
         WHERE status = 'DECIDED' AND decided_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(decided_before)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = due.iter().map(|(r, _)| *r).collect();
    sqlx::query("DELETE FROM signalling.referrals WHERE referral_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let mut audited = ids;
    audited.extend(due.iter().map(|(_, subject)| *subject));
    audited.sort();
    audited.dedup();
    audit::commit(
        tx,
        SCHEMA,
        &job("destroy-decided-referrals"),
        audited,
        "OK",
        now,
    )
    .await?;
    Ok(due.len() as u64)
}

/// Everything about subjects born before `born_before` (23 or older) is destroyed: their
/// signals (active or archived) and referrals.
async fn destroy_aged_batch(
    pool: &PgPool,
    born_before: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(u64, u64), ApiError> {
    let mut tx = pool.begin().await?;
    let signals: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT signal_id, subject_id FROM signalling.signals WHERE birth_date <= $1 \
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(born_before)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let referrals: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT referral_id, subject_id FROM signalling.referrals WHERE birth_date <= $1 \
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(born_before)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if signals.is_empty() && referrals.is_empty() {
        return Ok((0, 0));
    }
    let signal_ids: Vec<Uuid> = signals.iter().map(|(s, _)| *s).collect();
    leave_matches(&mut tx, &signal_ids, now).await?;
    sqlx::query("DELETE FROM signalling.signals WHERE signal_id = ANY($1)")
        .bind(&signal_ids)
        .execute(&mut *tx)
        .await?;
    let referral_ids: Vec<Uuid> = referrals.iter().map(|(r, _)| *r).collect();
    sqlx::query("DELETE FROM signalling.referrals WHERE referral_id = ANY($1)")
        .bind(&referral_ids)
        .execute(&mut *tx)
        .await?;
    let mut audited = signal_ids;
    audited.extend(&referral_ids);
    audited.extend(
        signals
            .iter()
            .chain(&referrals)
            .map(|(_, subject)| *subject),
    );
    audited.sort();
    audited.dedup();
    audit::commit(tx, SCHEMA, &job("destroy-at-23"), audited, "OK", now).await?;
    Ok((signals.len() as u64, referrals.len() as u64))
}
