//! Retention's deletions, each one batch claimed with `FOR UPDATE SKIP LOCKED` in a transaction
//! of its own with an audit record naming the ids; signals leave their matches through the same
//! match rule as CloseSignal.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, outbox::Event};

use super::{PgStore, SCHEMA, commit, emit, matches};
use crate::store::RetentionStore;

const BATCH: i64 = 200;

/// Sorted ids without duplicates, for an audit record.
fn audited(ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl RetentionStore for PgStore {
    async fn expire_signals(
        &self,
        job: &CallContext,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT signal_id, subject_id FROM signalling.signals \
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
        let ids: Vec<Uuid> = due.iter().map(|(s, _)| *s).collect();
        sqlx::query("UPDATE signalling.signals SET status = 'EXPIRED' WHERE signal_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        for signal in &ids {
            emit(
                &mut tx,
                Event::new("signalling.signal.expired").id("signal_id", *signal),
                now,
            )
            .await?;
        }
        let left = matches::leave_matches(&mut tx, &ids, now).await?;
        let ids = audited(
            due.iter()
                .flat_map(|(s, subject)| [*s, *subject])
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
        let left = matches::leave_matches(&mut tx, &signal_ids, now).await?;
        if !signal_ids.is_empty() {
            sqlx::query("DELETE FROM signalling.signals WHERE signal_id = ANY($1)")
                .bind(&signal_ids)
                .execute(&mut *tx)
                .await?;
        }
        let referral_ids: Vec<Uuid> = referrals.iter().map(|(r, _)| *r).collect();
        if !referral_ids.is_empty() {
            sqlx::query("DELETE FROM signalling.referrals WHERE referral_id = ANY($1)")
                .bind(&referral_ids)
                .execute(&mut *tx)
                .await?;
        }
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
        let dropped = sqlx::query(
            "DELETE FROM signalling.matches m WHERE m.status = 'CLOSED' \
             AND NOT EXISTS (SELECT 1 FROM signalling.match_signals ms WHERE ms.match_id = m.match_id)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(dropped)
    }

    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, ApiError> {
        Ok(zvv_platform::idempotency::purge(&self.pool, SCHEMA, cutoff).await?)
    }
}
