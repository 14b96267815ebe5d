//! The background work of every replica: the deadline monitor, retention and the idempotency
//! purge. Each batch claims its rows with `FOR UPDATE SKIP LOCKED` in a transaction of its own,
//! with an audit record naming the ids.

use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use sqlx::Row;
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, outbox::Event};

use super::{PgStore, SCHEMA, commit, emit};
use crate::{
    domain::{OpenAction, Recipient, Warning, recipient, warning_due},
    store::{JobStore, MonitorReport, RetentionReport},
};

const BATCH: i64 = 100;

/// Months a release mark is kept: the longest re-detention window.
pub const RELEASE_MARK_MONTHS: u32 = 24;

/// Before any date the store holds (and within PostgreSQL's range, unlike `NaiveDate::MIN`).
fn earliest() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default()
}

/// Marks the conditions of missed actions LAPSED (and their releases' facts), locking the rows
/// in the order of their ids.
async fn lapse(
    tx: &mut super::Tx,
    mut lapsed: Vec<(Uuid, Option<Uuid>, String)>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if lapsed.is_empty() {
        return Ok(());
    }
    lapsed.sort();
    lapsed.dedup();
    let conditions: Vec<Uuid> = lapsed.iter().map(|(c, ..)| *c).collect();
    sqlx::query(
        "SELECT condition_id FROM reintegration.conditions WHERE condition_id = ANY($1) \
         ORDER BY condition_id FOR UPDATE",
    )
    .bind(&conditions)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE reintegration.conditions SET status = 'LAPSED', \
         lapsed_at = COALESCE(lapsed_at, $2), updated_at = $2 WHERE condition_id = ANY($1)",
    )
    .bind(&conditions)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let mut facts: Vec<(Uuid, String)> = lapsed
        .into_iter()
        .filter_map(|(_, fact, kind)| fact.map(|f| (f, kind)))
        .collect();
    facts.sort();
    facts.dedup();
    for (fact, kind) in facts {
        sqlx::query(
            "UPDATE reintegration.release_facts SET lapsed = array_append(lapsed, $2) \
             WHERE fact_id = $1 AND NOT ($2 = ANY(lapsed))",
        )
        .bind(fact)
        .bind(&kind)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl JobStore for PgStore {
    async fn run_deadline_monitor(
        &self,
        job: &CallContext,
        today: NaiveDate,
        warn_working_days: u32,
        now: DateTime<Utc>,
    ) -> Result<MonitorReport, ApiError> {
        let mut report = MonitorReport::default();
        // a generous calendar horizon for the working days (weekends, holidays); the rule
        // itself decides
        let horizon = today + Duration::days(i64::from(warn_working_days) * 2 + 14);
        let mut cursor = (earliest(), Uuid::nil());
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(
                "SELECT a.action_id, a.condition_id, a.detention_id, a.action, a.due_on, \
                 a.warned_at IS NOT NULL AS warned, c.kind, d.municipality_code, \
                 d.release_fact_id, t.task_id, t.organisation \
                 FROM reintegration.actions a \
                 JOIN reintegration.conditions c ON c.condition_id = a.condition_id \
                 JOIN reintegration.detentions d ON d.detention_id = a.detention_id \
                 LEFT JOIN reintegration.tasks t ON t.condition_id = a.condition_id \
                   AND t.status = 'ASSIGNED' \
                 WHERE a.done_on IS NULL AND a.missed_at IS NULL AND a.due_on IS NOT NULL \
                   AND c.status NOT IN ('IN_PLACE', 'ARRANGED', 'NOT_APPLICABLE') \
                   AND (d.follow_up_until IS NULL OR d.follow_up_until >= $1) \
                   AND (a.due_on < $1 OR (a.warned_at IS NULL AND a.due_on <= $2)) \
                   AND (a.due_on, a.action_id) > ($3, $4) \
                 ORDER BY a.due_on, a.action_id LIMIT $5 FOR UPDATE OF a SKIP LOCKED",
            )
            .bind(today)
            .bind(horizon)
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else {
                tx.rollback().await?;
                return Ok(report);
            };
            cursor = (last.try_get("due_on")?, last.try_get("action_id")?);
            let mut warned = Vec::new();
            // conditions (and release facts) that lapse, written after the loop in one order, so
            // that two replicas whose batches touch the same conditions cannot deadlock
            let mut lapsed: Vec<(Uuid, Option<Uuid>, String)> = Vec::new();
            for row in &rows {
                let action_id: Uuid = row.try_get("action_id")?;
                let condition_id: Uuid = row.try_get("condition_id")?;
                let detention_id: Uuid = row.try_get("detention_id")?;
                let due_on: NaiveDate = row.try_get("due_on")?;
                let open = OpenAction {
                    due_on,
                    warned_upcoming: row.try_get("warned")?,
                    warned_missed: false,
                };
                let Some(warning) = warning_due(&open, today, warn_working_days) else {
                    continue;
                };
                let municipality: String = row.try_get("municipality_code")?;
                let task: Option<Uuid> = row.try_get("task_id")?;
                let holder: Option<String> = row.try_get("organisation")?;
                let kind: String = row.try_get("kind")?;
                let action: String = row.try_get("action")?;
                let mut event = Event::new(match warning {
                    Warning::Upcoming => "reintegration.deadline.approaching",
                    Warning::Missed => "reintegration.deadline.missed",
                })
                .id("deadline_id", action_id)
                .id("detention_id", detention_id)
                .id("condition_id", condition_id)
                .code("condition", kind.clone())
                .code("due_action", action)
                .code("municipality_code", municipality.clone());
                if let Some(task) = task {
                    event = event.id("task_id", task);
                }
                event = match recipient(holder.as_deref(), &municipality) {
                    Recipient::Organisation(org) => event.to_organisation(org),
                    Recipient::Municipality(m) => event.to_municipality(m),
                };
                match warning {
                    Warning::Upcoming => {
                        sqlx::query(
                            "UPDATE reintegration.actions SET warned_at = $2 WHERE action_id = $1",
                        )
                        .bind(action_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        report.upcoming += 1;
                    }
                    Warning::Missed => {
                        // the municipality learns of every lapse, also of a partner's task
                        event = event.to_municipality(municipality.clone());
                        sqlx::query(
                            "UPDATE reintegration.actions SET missed_at = $2 WHERE action_id = $1",
                        )
                        .bind(action_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        let fact: Option<Uuid> = row.try_get("release_fact_id")?;
                        lapsed.push((condition_id, fact, kind.clone()));
                        report.missed += 1;
                    }
                }
                emit(&mut tx, event, now).await?;
                warned.extend([action_id, condition_id, detention_id]);
            }
            lapse(&mut tx, lapsed, now).await?;
            if warned.is_empty() {
                tx.rollback().await?;
            } else {
                commit(tx, job, warned, now).await?;
            }
            if (rows.len() as i64) < BATCH {
                return Ok(report);
            }
        }
    }

    async fn run_retention(
        &self,
        job: &CallContext,
        today: NaiveDate,
        retention_months: u32,
        now: DateTime<Utc>,
    ) -> Result<RetentionReport, ApiError> {
        let mut report = RetentionReport::default();
        let released_by = today
            .checked_sub_months(Months::new(retention_months))
            .unwrap_or_else(earliest);
        loop {
            let mut tx = self.pool.begin().await?;
            let due: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
                "SELECT d.detention_id, d.subject_id, d.municipality_code \
                 FROM reintegration.detentions d \
                 WHERE d.released_on IS NOT NULL AND d.released_on <= $1 \
                   AND (d.follow_up_until IS NULL OR d.follow_up_until <= $2) \
                   AND NOT EXISTS (SELECT 1 FROM reintegration.tasks t \
                     JOIN reintegration.actions a ON a.condition_id = t.condition_id \
                     WHERE t.detention_id = d.detention_id AND t.status = 'ASSIGNED' \
                       AND a.done_on IS NULL AND a.due_on >= $2) \
                 ORDER BY d.released_on, d.detention_id LIMIT $3 FOR UPDATE SKIP LOCKED",
            )
            .bind(released_by)
            .bind(today)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if due.is_empty() {
                tx.rollback().await?;
                break;
            }
            let ids: Vec<Uuid> = due.iter().map(|(id, ..)| *id).collect();
            sqlx::query("DELETE FROM reintegration.detentions WHERE detention_id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            for (id, _, municipality) in &due {
                emit(
                    &mut tx,
                    Event::new("reintegration.detention.destroyed")
                        .id("detention_id", *id)
                        .to_municipality(municipality.clone()),
                    now,
                )
                .await?;
            }
            let audited = due.iter().flat_map(|(d, s, _)| [*d, *s]).collect();
            commit(tx, job, audited, now).await?;
            report.detentions_destroyed += due.len() as u64;
        }
        let marks_before = today
            .checked_sub_months(Months::new(RELEASE_MARK_MONTHS))
            .unwrap_or_else(earliest);
        let mut tx = self.pool.begin().await?;
        let facts: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM reintegration.release_marks WHERE released_on < $1 RETURNING fact_id",
        )
        .bind(marks_before)
        .fetch_all(&mut *tx)
        .await?;
        if facts.is_empty() {
            tx.rollback().await?;
        } else {
            report.release_marks_destroyed = facts.len() as u64;
            commit(tx, job, facts, now).await?;
        }
        Ok(report)
    }

    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, ApiError> {
        Ok(zvv_platform::idempotency::purge(&self.pool, SCHEMA, before).await?)
    }
}
