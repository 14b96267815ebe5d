//! Retention's deletions, each one batch claimed with `FOR UPDATE SKIP LOCKED` in a transaction
//! of its own with an audit record naming the ids; signals leave their matches through the same
//! match rule as CloseSignal. A death reported by intake destroys a subject's data through the
//! same path ([`destroy_subject`]).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, outbox::Event};

use super::{PgStore, SCHEMA, commit, emit, lock_subjects, matches};
use crate::store::{RetentionStore, SubjectDestroyed};

const BATCH: i64 = 200;

/// Sorted ids without duplicates, for an audit record.
fn audited(ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Destroys `signals` (in any status; the active ones leave their open matches first, by the
/// match rule) and `referrals` in the caller's transaction. Returns the open matches the
/// signals left.
async fn destroy(
    conn: &mut PgConnection,
    signals: &[Uuid],
    referrals: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, ApiError> {
    let left = matches::leave_matches(conn, signals, now).await?;
    if !signals.is_empty() {
        sqlx::query("DELETE FROM signalling.signals WHERE signal_id = ANY($1)")
            .bind(signals)
            .execute(&mut *conn)
            .await?;
    }
    if !referrals.is_empty() {
        sqlx::query("DELETE FROM signalling.referrals WHERE referral_id = ANY($1)")
            .bind(referrals)
            .execute(&mut *conn)
            .await?;
    }
    Ok(left)
}

/// Removes the closed matches without any signal left (of `among` only, when given); returns
/// their ids.
async fn drop_empty_matches(
    conn: &mut PgConnection,
    among: Option<&[Uuid]>,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar(
        "DELETE FROM signalling.matches m WHERE m.status = 'CLOSED' \
         AND ($1::uuid[] IS NULL OR m.match_id = ANY($1)) \
         AND NOT EXISTS (SELECT 1 FROM signalling.match_signals ms WHERE ms.match_id = m.match_id) \
         RETURNING m.match_id",
    )
    .bind(among)
    .fetch_all(conn)
    .await?)
}

/// Destroys everything signalling holds about `subject` in the caller's transaction, the way
/// retention does at the age limit: its signals in any status (the archive too), leaving their
/// matches by the match rule, its referrals, and the closed matches left without signals.
pub(super) async fn destroy_subject(
    conn: &mut PgConnection,
    subject: Uuid,
    now: DateTime<Utc>,
) -> Result<SubjectDestroyed, ApiError> {
    // the subject, then the families its signals are matched in, as registrations lock them
    lock_subjects(conn, &[subject]).await?;
    let parents: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT m.anchor_subject_id FROM signalling.matches m \
         JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
         JOIN signalling.signals s ON s.signal_id = ms.signal_id \
         WHERE s.subject_id = $1 AND m.kind = 'FAMILY' AND m.status = 'OPEN' \
           AND m.anchor_subject_id <> $1 ORDER BY 1",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    lock_subjects(conn, &parents).await?;
    let signals: Vec<Uuid> = sqlx::query_scalar(
        "SELECT signal_id FROM signalling.signals WHERE subject_id = $1 ORDER BY signal_id FOR UPDATE",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let referrals: Vec<Uuid> = sqlx::query_scalar(
        "SELECT referral_id FROM signalling.referrals WHERE subject_id = $1 ORDER BY referral_id \
         FOR UPDATE",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let in_matches: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT match_id FROM signalling.match_signals WHERE signal_id = ANY($1)",
    )
    .bind(&signals)
    .fetch_all(&mut *conn)
    .await?;
    let left = destroy(conn, &signals, &referrals, now).await?;
    let removed = drop_empty_matches(conn, Some(&in_matches)).await?;
    Ok(SubjectDestroyed {
        signals,
        referrals,
        left,
        removed,
    })
}

impl RetentionStore for PgStore {
    async fn expire_signals(
        &self,
        job: &CallContext,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT signal_id, subject_id, organisation FROM signalling.signals \
             WHERE status = 'ACTIVE' AND expires_on < $1 \
             ORDER BY expires_on LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(today)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids: Vec<Uuid> = due.iter().map(|(s, ..)| *s).collect();
        sqlx::query("UPDATE signalling.signals SET status = 'EXPIRED' WHERE signal_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        for (signal, _, organisation) in &due {
            emit(
                &mut tx,
                Event::new("signalling.signal.expired")
                    .id("signal_id", *signal)
                    .to_organisation(organisation.clone()),
                now,
            )
            .await?;
        }
        let left = matches::leave_matches(&mut tx, &ids, now).await?;
        let ids = audited(
            due.iter()
                .flat_map(|(s, subject, _)| [*s, *subject])
                .chain(left),
        );
        commit(tx, job, ids, now).await?;
        Ok(due.len() as u64)
    }

    async fn destroy_archived_signals(
        &self,
        job: &CallContext,
        cutoff: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT signal_id FROM signalling.signals WHERE status <> 'ACTIVE' \
             AND coalesce(closed_at::date, expires_on) < $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(cutoff)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        sqlx::query("DELETE FROM signalling.signals WHERE signal_id = ANY($1)")
            .bind(&due)
            .execute(&mut *tx)
            .await?;
        let n = due.len() as u64;
        commit(tx, job, due, now).await?;
        Ok(n)
    }

    async fn destroy_at_age_limit(
        &self,
        job: &CallContext,
        born_by: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), ApiError> {
        let mut tx = self.pool.begin().await?;
        let signals: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT signal_id, subject_id FROM signalling.signals WHERE birth_date <= $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(born_by)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let referrals: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT referral_id, subject_id FROM signalling.referrals WHERE birth_date <= $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(born_by)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if signals.is_empty() && referrals.is_empty() {
            tx.rollback().await?;
            return Ok((0, 0));
        }
        let signal_ids: Vec<Uuid> = signals.iter().map(|(s, _)| *s).collect();
        let referral_ids: Vec<Uuid> = referrals.iter().map(|(r, _)| *r).collect();
        let left = destroy(&mut tx, &signal_ids, &referral_ids, now).await?;
        let ids = audited(
            signals
                .iter()
                .chain(&referrals)
                .flat_map(|(id, subject)| [*id, *subject])
                .chain(left),
        );
        commit(tx, job, ids, now).await?;
        Ok((signals.len() as u64, referrals.len() as u64))
    }

    async fn destroy_decided_referrals(
        &self,
        job: &CallContext,
        decided_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT referral_id, subject_id FROM signalling.referrals \
             WHERE status = 'DECIDED' AND decided_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(decided_before)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids: Vec<Uuid> = due.iter().map(|(r, _)| *r).collect();
        sqlx::query("DELETE FROM signalling.referrals WHERE referral_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        commit(
            tx,
            job,
            audited(due.iter().flat_map(|(r, subject)| [*r, *subject])),
            now,
        )
        .await?;
        Ok(due.len() as u64)
    }

    async fn drop_empty_matches(&self) -> Result<u64, ApiError> {
        let mut conn = self.pool.acquire().await?;
        Ok(drop_empty_matches(&mut conn, None).await?.len() as u64)
    }

    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, ApiError> {
        Ok(zvv_platform::idempotency::purge(&self.pool, SCHEMA, cutoff).await?)
    }

    async fn purge_consumed_events(
        &self,
        older_than: std::time::Duration,
    ) -> Result<u64, ApiError> {
        Ok(zvv_platform::sink::purge_consumed(&self.pool, SCHEMA, older_than).await?)
    }
}
