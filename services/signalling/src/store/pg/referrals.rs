//! Referrals: submission, triage decisions within the jurisdiction, the overdue monitor.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Row, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext, auth::Jurisdiction, codes::MunicipalityCode, error::ApiError,
    idempotency::Key, outbox::Event,
};

use super::{PgStore, Tx, abandon, commit, emit, first_response, remember};
use crate::{
    domain::{Decision, Level, Referral},
    store::{Begun, DecideOutcome, ReferralStore, Submission},
};

const COLUMNS: &str = "referral_id, subject_id, organisation, source_instrument, instrument_version, \
    level, observed_on, municipality_code, birth_date, decide_by, decision, rationale, decided_by, \
    decided_at, created_at";

fn referral_from_row(row: &PgRow) -> Result<Referral, ApiError> {
    let level: String = row.try_get("level")?;
    let decision: Option<String> = row.try_get("decision")?;
    Ok(Referral {
        id: row.try_get("referral_id")?,
        subject_id: row.try_get("subject_id")?,
        organisation: row.try_get("organisation")?,
        source_instrument: row.try_get("source_instrument")?,
        instrument_version: row.try_get("instrument_version")?,
        level: Level::parse(&level)
            .ok_or_else(|| ApiError::internal(format!("stored level {level:?}")))?,
        observed_on: row.try_get("observed_on")?,
        municipality_code: row
            .try_get::<Option<String>, _>("municipality_code")?
            .unwrap_or_default(),
        birth_date: row.try_get("birth_date")?,
        decide_by: row.try_get("decide_by")?,
        decision: decision.as_deref().and_then(Decision::parse),
        rationale: row.try_get("rationale")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A referral event with the municipality the referral is routed to as its audience (none for
/// referrals made before routing).
fn routed_to(event: Event, municipality: Option<&str>) -> Event {
    match municipality.filter(|m| MunicipalityCode::parse(m).is_ok()) {
        Some(code) => event.to_municipality(code),
        None => event,
    }
}

async fn fetch(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Referral>, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM signalling.referrals WHERE referral_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| referral_from_row(&r))
        .transpose()
}

/// A SubmitReferral transaction that holds its idempotency key.
pub struct PgSubmission {
    tx: Tx,
}

impl Submission for PgSubmission {
    async fn submit(
        self,
        ctx: &CallContext,
        referral: Referral,
        key: &Key,
    ) -> Result<Referral, ApiError> {
        let Self { mut tx } = self;
        let now = referral.created_at;
        sqlx::query(
            "INSERT INTO signalling.referrals (referral_id, subject_id, organisation, source_instrument, \
             instrument_version, level, observed_on, status, decide_by, created_at, birth_date, \
             municipality_code) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'AWAITING_TRIAGE', $8, $9, $10, $11)",
        )
        .bind(referral.id)
        .bind(referral.subject_id)
        .bind(&referral.organisation)
        .bind(&referral.source_instrument)
        .bind(&referral.instrument_version)
        .bind(referral.level.as_str())
        .bind(referral.observed_on)
        .bind(referral.decide_by)
        .bind(now)
        .bind(referral.birth_date)
        .bind(&referral.municipality_code)
        .execute(&mut *tx)
        .await?;
        emit(
            &mut tx,
            routed_to(
                Event::new("signalling.referral.submitted")
                    .id("referral_id", referral.id)
                    .id("subject_id", referral.subject_id)
                    .code("level", referral.level.as_str())
                    .code("municipality_code", referral.municipality_code.clone()),
                Some(&referral.municipality_code),
            ),
            now,
        )
        .await?;
        remember(&mut tx, key, &referral, now).await?;
        commit(tx, ctx, vec![referral.id, referral.subject_id], now).await?;
        Ok(referral)
    }
}

impl ReferralStore for PgStore {
    type Submission = PgSubmission;

    async fn begin_submission(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Begun<PgSubmission, Referral>, ApiError> {
        let mut tx = self.pool.begin().await?;
        match first_response::<Referral>(&mut tx, key).await? {
            Some(first) => {
                commit(tx, ctx, vec![first.id, first.subject_id], now).await?;
                Ok(Begun::Replayed(first))
            }
            None => Ok(Begun::Fresh(PgSubmission { tx })),
        }
    }

    async fn list_referrals(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        decided: Option<bool>,
        overdue_on: Option<NaiveDate>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Referral>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM signalling.referrals \
             WHERE ($1::bool IS NULL OR (status = 'DECIDED') = $1) \
               AND ($2::date IS NULL OR (status = 'AWAITING_TRIAGE' AND decide_by < $2)) \
               AND ($5::text[] IS NULL OR municipality_code = ANY($5)) \
               AND referral_id > $3 ORDER BY referral_id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(decided)
            .bind(overdue_on)
            .bind(after.unwrap_or_else(Uuid::nil))
            .bind(i64::from(limit))
            .bind(scope.sql_filter())
            .fetch_all(&mut *tx)
            .await?;
        let referrals = rows
            .iter()
            .map(referral_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = referrals
            .iter()
            .flat_map(|r| [r.id, r.subject_id])
            .collect();
        commit(tx, ctx, ids, now).await?;
        Ok(referrals)
    }

    async fn decide(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        decision: Decision,
        rationale: String,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<DecideOutcome, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<Referral>(&mut tx, key).await? {
            commit(tx, ctx, vec![first.id, first.subject_id], now).await?;
            return Ok(DecideOutcome::Decided(Box::new(first)));
        }
        let mut referral = match fetch(&mut tx, id, true).await? {
            Some(r) if scope.covers(&r.municipality_code) => r,
            found => {
                abandon(tx).await?;
                return Ok(if found.is_some() {
                    DecideOutcome::OutsideJurisdiction
                } else {
                    DecideOutcome::NotFound
                });
            }
        };
        if referral.decision.is_some() {
            abandon(tx).await?;
            return Ok(DecideOutcome::AlreadyDecided {
                subject_id: referral.subject_id,
            });
        }
        let officer = ctx.principal().sub;
        sqlx::query(
            "UPDATE signalling.referrals SET status = 'DECIDED', decision = $2, rationale = $3, \
             decided_by = $4, decided_at = $5 WHERE referral_id = $1",
        )
        .bind(id)
        .bind(decision.as_str())
        .bind(&rationale)
        .bind(&officer)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        emit(
            &mut tx,
            routed_to(
                Event::new("signalling.referral.decided")
                    .id("referral_id", id)
                    .id("subject_id", referral.subject_id)
                    .code("decision", decision.as_str()),
                Some(&referral.municipality_code),
            ),
            now,
        )
        .await?;
        referral.decision = Some(decision);
        referral.rationale = Some(rationale);
        referral.decided_by = Some(officer);
        referral.decided_at = Some(now);
        remember(&mut tx, key, &referral, now).await?;
        commit(tx, ctx, vec![id, referral.subject_id], now).await?;
        Ok(DecideOutcome::Decided(Box::new(referral)))
    }

    async fn report_overdue(&self, today: NaiveDate, now: DateTime<Utc>) -> Result<u64, ApiError> {
        let mut reported = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due: Vec<(Uuid, Uuid, String, Option<String>)> = sqlx::query_as(
                "SELECT referral_id, subject_id, level, municipality_code FROM signalling.referrals \
                 WHERE status = 'AWAITING_TRIAGE' AND decide_by < $1 AND overdue_reported_at IS NULL \
                 ORDER BY decide_by LIMIT 100 FOR UPDATE SKIP LOCKED",
            )
            .bind(today)
            .fetch_all(&mut *tx)
            .await?;
            if due.is_empty() {
                tx.rollback().await?;
                return Ok(reported);
            }
            let ids: Vec<Uuid> = due.iter().map(|(id, ..)| *id).collect();
            sqlx::query(
                "UPDATE signalling.referrals SET overdue_reported_at = $2 WHERE referral_id = ANY($1)",
            )
            .bind(&ids)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (id, subject, level, municipality) in &due {
                emit(
                    &mut tx,
                    routed_to(
                        Event::new("signalling.referral.overdue")
                            .id("referral_id", *id)
                            .id("subject_id", *subject)
                            .code("level", level.clone()),
                        municipality.as_deref(),
                    ),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            reported += due.len() as u64;
        }
    }
}
