//! Signals: registration (with the matches it makes), closing, the information duty, reads.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key, outbox::Event};

use super::{
    PgStore, SIGNAL_COLUMNS, Tx, abandon, commit, emit, fetch_signal, first_response,
    lock_subjects, matches, remember, signal_from_row,
};
use crate::{
    domain::{CloseReason, Family, InformationDuty, Signal, SignalStatus},
    store::{Begun, CloseOutcome, RegisterOutcome, Registered, Registration, SignalStore},
};

/// The ids a registration's audit record names.
fn registered_ids(r: &Registered) -> Vec<Uuid> {
    let mut ids = vec![r.signal.id, r.signal.subject_id];
    ids.extend(r.matches.iter().map(|m| m.id));
    ids
}

/// A RegisterSignal transaction that holds its idempotency key.
pub struct PgRegistration {
    tx: Tx,
}

impl Registration for PgRegistration {
    async fn register(
        self,
        ctx: &CallContext,
        signal: Signal,
        mut families: Vec<Family>,
        key: &Key,
    ) -> Result<RegisterOutcome, ApiError> {
        let Self { mut tx } = self;
        let now = signal.created_at;
        // the subject first, then its families by parent, always in the same order, so that
        // concurrent registrations on siblings make one family match and never deadlock
        families.sort_by_key(|f| f.parent);
        families.dedup_by_key(|f| f.parent);
        let locks: Vec<Uuid> = std::iter::once(signal.subject_id)
            .chain(families.iter().map(|f| f.parent))
            .collect();
        lock_subjects(&mut tx, &locks).await?;
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT signal_id FROM signalling.signals \
             WHERE subject_id = $1 AND organisation = $2 AND status = 'ACTIVE'",
        )
        .bind(signal.subject_id)
        .bind(&signal.organisation)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            abandon(tx).await?;
            return Ok(RegisterOutcome::Duplicate(existing));
        }
        sqlx::query(
            "INSERT INTO signalling.signals (signal_id, subject_id, organisation, organisation_type, \
             contact_name, contact_phone, contact_email, registered_on, duration_months, expires_on, \
             status, birth_date, municipality_code, neighbourhood_code, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'ACTIVE', $11, $12, $13, $14)",
        )
        .bind(signal.id)
        .bind(signal.subject_id)
        .bind(&signal.organisation)
        .bind(&signal.organisation_type)
        .bind(&signal.contact.name)
        .bind(&signal.contact.phone)
        .bind(&signal.contact.email)
        .bind(signal.registered_on)
        .bind(i32::try_from(signal.duration_months).map_err(ApiError::internal)?)
        .bind(signal.expires_on)
        .bind(signal.birth_date)
        .bind(&signal.municipality_code)
        .bind(&signal.neighbourhood_code)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        emit(
            &mut tx,
            Event::new("signalling.signal.registered")
                .id("signal_id", signal.id)
                .id("subject_id", signal.subject_id)
                .code("organisation_type", signal.organisation_type.clone())
                .to_organisation(signal.organisation.clone()),
            now,
        )
        .await?;
        let matches =
            matches::reconcile_after_registration(&mut tx, &signal, &families, now).await?;
        let registered = Registered { signal, matches };
        remember(&mut tx, key, &registered, now).await?;
        commit(tx, ctx, registered_ids(&registered), now).await?;
        Ok(RegisterOutcome::Created(Box::new(registered)))
    }
}

impl SignalStore for PgStore {
    type Registration = PgRegistration;

    async fn begin_registration(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Begun<PgRegistration, Registered>, ApiError> {
        let mut tx = self.pool.begin().await?;
        match first_response::<Registered>(&mut tx, key).await? {
            Some(first) => {
                commit(tx, ctx, registered_ids(&first), now).await?;
                Ok(Begun::Replayed(first))
            }
            None => Ok(Begun::Fresh(PgRegistration { tx })),
        }
    }

    async fn close(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        reason: CloseReason,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<CloseOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<Signal>(&mut tx, key).await? {
            commit(tx, ctx, vec![first.id, first.subject_id], now).await?;
            return Ok(CloseOutcome::Closed(Box::new(first)));
        }
        let Some(found) = fetch_signal(&mut tx, organisation, id, false).await? else {
            abandon(tx).await?;
            return Ok(CloseOutcome::NotFound);
        };
        lock_subjects(&mut tx, &[found.subject_id]).await?;
        let Some(mut signal) = fetch_signal(&mut tx, organisation, id, true).await? else {
            abandon(tx).await?;
            return Ok(CloseOutcome::NotFound);
        };
        if signal.status != SignalStatus::Active {
            abandon(tx).await?;
            return Ok(CloseOutcome::NotActive(signal.status));
        }
        // the families this signal is matched in, locked as registrations lock them
        let parents: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m.anchor_subject_id FROM signalling.matches m \
             JOIN signalling.match_signals ms ON ms.match_id = m.match_id \
             WHERE ms.signal_id = $1 AND m.kind = 'FAMILY' AND m.status = 'OPEN' ORDER BY 1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        lock_subjects(&mut tx, &parents).await?;
        sqlx::query(
            "UPDATE signalling.signals SET status = 'CLOSED', close_reason = $2, closed_at = $3 \
             WHERE signal_id = $1",
        )
        .bind(id)
        .bind(reason.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        emit(
            &mut tx,
            Event::new("signalling.signal.closed")
                .id("signal_id", id)
                .code("reason", reason.as_str())
                .to_organisation(organisation),
            now,
        )
        .await?;
        // the organisation leaves every open match it was in through this signal
        let left = matches::leave_matches(&mut tx, &[id], now).await?;
        signal.status = SignalStatus::Closed;
        signal.close_reason = Some(reason);
        signal.closed_at = Some(now);
        remember(&mut tx, key, &signal, now).await?;
        let mut ids = vec![id, signal.subject_id];
        ids.extend(left);
        commit(tx, ctx, ids, now).await?;
        Ok(CloseOutcome::Closed(Box::new(signal)))
    }

    async fn record_information_duty(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        duty: InformationDuty,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Option<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<Signal>(&mut tx, key).await? {
            commit(tx, ctx, vec![first.id, first.subject_id], now).await?;
            return Ok(Some(first));
        }
        let Some(mut signal) = fetch_signal(&mut tx, organisation, id, true).await? else {
            abandon(tx).await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE signalling.signals SET parents_informed_on = $2, child_informed_on = $3, \
             postponement_reason = $4 WHERE signal_id = $1",
        )
        .bind(id)
        .bind(duty.parents_informed_on)
        .bind(duty.child_informed_on)
        .bind(&duty.postponement_reason)
        .execute(&mut *tx)
        .await?;
        signal.record(duty);
        let met = if signal.information_duty_met() {
            "MET"
        } else {
            "NOT_MET"
        };
        emit(
            &mut tx,
            Event::new("signalling.signal.information_duty_recorded")
                .id("signal_id", id)
                .code("information_duty", met)
                .to_organisation(organisation),
            now,
        )
        .await?;
        remember(&mut tx, key, &signal, now).await?;
        commit(tx, ctx, vec![id, signal.subject_id], now).await?;
        Ok(Some(signal))
    }

    async fn get(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        match fetch_signal(&mut tx, organisation, id, false).await? {
            Some(s) => {
                commit(tx, ctx, vec![id, s.subject_id], now).await?;
                Ok(Some(s))
            }
            None => {
                abandon(tx).await?;
                Ok(None)
            }
        }
    }

    async fn list(
        &self,
        ctx: &CallContext,
        organisation: &str,
        status: Option<SignalStatus>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Signal>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signalling.signals s WHERE s.organisation = $1 \
             AND ($2::text IS NULL OR s.status = $2) AND s.signal_id > $3 ORDER BY s.signal_id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organisation)
            .bind(status.map(SignalStatus::as_str))
            .bind(after.unwrap_or_else(Uuid::nil))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let signals = rows
            .iter()
            .map(signal_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = signals.iter().flat_map(|s| [s.id, s.subject_id]).collect();
        commit(tx, ctx, ids, now).await?;
        Ok(signals)
    }
}
