//! Deliveries to webhooks and suite services: leased by workers, attempted, retried, dead-lettered.

use chrono::{DateTime, Utc};
use sqlx::{Row, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key};

use super::{EVENT_COLUMNS, PgStore, abandon, commit, event_from_row, first_response, remember};
use crate::{
    domain::deliveries::{AfterFailure, Delivery, DeliveryStatus},
    store::{Attempt, Claimed, DeliveryStore, Page, Target},
};

fn delivery_from_row(row: &PgRow) -> Result<Delivery, ApiError> {
    let status: String = row.try_get("status")?;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| ApiError::internal(format!("stored delivery status {status:?}")))?;
    let open = matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    Ok(Delivery {
        id: row.try_get("delivery_id")?,
        subscription_id: row.try_get("subscription_id")?,
        event_id: row.try_get("event_id")?,
        channel: row.try_get("channel")?,
        status,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        last_http_status: u16::try_from(row.try_get::<i32, _>("last_http_status")?).unwrap_or(0),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        next_attempt_at: if open {
            Some(row.try_get("next_attempt_at")?)
        } else {
            None
        },
        delivered_at: row.try_get("delivered_at")?,
    })
}

/// Announces dead letters in their organisations' inboxes.
async fn announce_dead_letters(
    conn: &mut sqlx::PgConnection,
    deliveries: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO notifications.inbox (notification_id, organisation, subscription_id, kind, \
         event_id, delivery_id, created_at) \
         SELECT gen_random_uuid(), d.organisation, d.subscription_id, 'DEAD_LETTER', d.event_id, \
                d.delivery_id, $2 \
         FROM notifications.deliveries d WHERE d.delivery_id = ANY($1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(deliveries)
    .bind(now)
    .execute(conn)
    .await?;
    crate::jobs::delivery::count_dead_letters(deliveries.len());
    Ok(())
}

impl DeliveryStore for PgStore {
    #[allow(clippy::too_many_arguments)]
    async fn list_deliveries(
        &self,
        ctx: &CallContext,
        organisation: &str,
        subscription: Uuid,
        status: Option<DeliveryStatus>,
        after: Option<i64>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<Page<Delivery>>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let owned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notifications.subscriptions \
             WHERE subscription_id = $1 AND organisation = $2 AND status <> 'DELETED')",
        )
        .bind(subscription)
        .bind(organisation)
        .fetch_one(&mut *tx)
        .await?;
        if !owned {
            abandon(tx).await?;
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT d.delivery_id, d.subscription_id, d.event_id, e.channel, d.status, d.attempts, \
                    d.last_http_status, d.last_error, d.created_at, d.next_attempt_at, \
                    d.delivered_at, d.seq \
             FROM notifications.deliveries d JOIN notifications.events e USING (event_id) \
             WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.status = $2) \
               AND ($3::bigint IS NULL OR d.seq > $3) \
             ORDER BY d.seq LIMIT $4",
        )
        .bind(subscription)
        .bind(status.map(DeliveryStatus::as_str))
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push((row.try_get::<i64, _>("seq")?, delivery_from_row(row)?));
        }
        let (items, next) = zvv_platform::paging::page(items, limit, |(seq, _)| *seq);
        let items: Vec<Delivery> = items.into_iter().map(|(_, d)| d).collect();
        let mut ids = vec![subscription];
        ids.extend(items.iter().map(|d| d.id));
        commit(tx, ctx, ids, now).await?;
        Ok(Some(Page {
            items,
            next: next.map(|seq| zvv_platform::paging::encode_token(&seq.to_string())),
        }))
    }

    async fn redeliver(
        &self,
        ctx: &CallContext,
        organisation: &str,
        ids: &[Uuid],
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<u32, ApiError> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<u32>(&mut tx, key).await? {
            commit(tx, ctx, ids.to_vec(), now).await?;
            return Ok(first);
        }
        let known: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications.deliveries d \
             JOIN notifications.subscriptions s USING (subscription_id) \
             WHERE d.delivery_id = ANY($1) AND d.organisation = $2 AND s.status = 'ACTIVE'",
        )
        .bind(ids)
        .bind(organisation)
        .fetch_one(&mut *tx)
        .await?;
        if usize::try_from(known).unwrap_or(0) != ids.len() {
            abandon(tx).await?;
            return Err(ApiError::NotFound(
                "one or more delivery_ids are not deliveries of an active subscription of this \
                 organisation"
                    .into(),
            ));
        }
        // a new window from now; the attempts so far stay counted
        let scheduled = sqlx::query(
            "UPDATE notifications.deliveries SET status = 'PENDING', next_attempt_at = $3, \
             give_up_at = $3 + (give_up_at - created_at), leased_until = NULL, lease_id = NULL \
             WHERE delivery_id = ANY($1) AND organisation = $2",
        )
        .bind(ids)
        .bind(organisation)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let scheduled = u32::try_from(scheduled).unwrap_or(u32::MAX);
        remember(&mut tx, key, &scheduled, now).await?;
        commit(tx, ctx, ids.to_vec(), now).await?;
        Ok(scheduled)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>, ApiError> {
        let sql = format!(
            "WITH due AS ( \
                SELECT d.delivery_id FROM notifications.deliveries d \
                JOIN notifications.subscriptions s ON s.subscription_id = d.subscription_id \
                WHERE d.status IN ('PENDING', 'RETRYING') AND d.next_attempt_at <= $1 \
                  AND (d.leased_until IS NULL OR d.leased_until < $1) \
                  AND s.status = 'ACTIVE' \
                  AND NOT EXISTS (SELECT 1 FROM notifications.deliveries p \
                      WHERE p.subscription_id = d.subscription_id \
                        AND p.resource_key = d.resource_key AND p.seq < d.seq \
                        AND p.status IN ('PENDING', 'RETRYING')) \
                ORDER BY d.next_attempt_at, d.seq LIMIT $3 \
                FOR UPDATE OF d SKIP LOCKED) \
             UPDATE notifications.deliveries d SET leased_until = $2, lease_id = gen_random_uuid() \
             FROM due, notifications.events e, notifications.subscriptions s \
             WHERE d.delivery_id = due.delivery_id AND e.event_id = d.event_id \
               AND s.subscription_id = d.subscription_id \
             RETURNING d.delivery_id, d.lease_id, d.subscription_id, d.attempts, d.give_up_at, s.delivery, \
                       s.webhook_url, s.authorization_sealed, s.secret_sealed, s.service_name, \
                       {EVENT_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let delivery: String = row.try_get("delivery")?;
                let target = if delivery == "SERVICE" {
                    Target::Service {
                        name: row
                            .try_get::<Option<String>, _>("service_name")?
                            .unwrap_or_default(),
                    }
                } else {
                    Target::Webhook {
                        url: row
                            .try_get::<Option<String>, _>("webhook_url")?
                            .unwrap_or_default(),
                        authorization_sealed: row.try_get("authorization_sealed")?,
                        secret_sealed: row
                            .try_get::<Option<Vec<u8>>, _>("secret_sealed")?
                            .unwrap_or_default(),
                    }
                };
                Ok(Claimed {
                    delivery_id: row.try_get("delivery_id")?,
                    lease_id: row.try_get("lease_id")?,
                    subscription_id: row.try_get("subscription_id")?,
                    attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
                    give_up_at: row.try_get("give_up_at")?,
                    event: event_from_row(row)?,
                    target,
                })
            })
            .collect()
    }

    async fn record_delivered(
        &self,
        delivered: &[(Uuid, Uuid, u16)],
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = delivered.iter().map(|(id, _, _)| *id).collect();
        let leases: Vec<Uuid> = delivered.iter().map(|(_, lease, _)| *lease).collect();
        let statuses: Vec<i32> = delivered.iter().map(|(_, _, s)| i32::from(*s)).collect();
        sqlx::query(
            "UPDATE notifications.deliveries d SET status = 'DELIVERED', attempts = attempts + 1, \
             last_http_status = t.s, last_error = '', delivered_at = $3, leased_until = NULL, \
             lease_id = NULL \
             FROM unnest($1::uuid[], $2::int[], $4::uuid[]) AS t(id, s, lease) \
             WHERE d.delivery_id = t.id AND d.lease_id = t.lease \
               AND d.status IN ('PENDING', 'RETRYING')",
        )
        .bind(&ids)
        .bind(&statuses)
        .bind(now)
        .bind(&leases)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_attempt(
        &self,
        claimed: &Claimed,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        match attempt {
            Attempt::Delivered { http_status } => {
                sqlx::query(
                    "UPDATE notifications.deliveries SET status = 'DELIVERED', \
                     attempts = attempts + 1, last_http_status = $2, last_error = '', \
                     delivered_at = $3, leased_until = NULL WHERE delivery_id = $1",
                )
                .bind(claimed.delivery_id)
                .bind(i32::from(http_status))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Attempt::Failed {
                http_status,
                error,
                then,
            } => {
                let (status, next) = match then {
                    AfterFailure::RetryAt(at) => ("RETRYING", at),
                    AfterFailure::DeadLetter => ("DEAD_LETTERED", now),
                };
                let recorded = sqlx::query(
                    "UPDATE notifications.deliveries SET status = $2, attempts = attempts + 1, \
                     last_http_status = $3, last_error = $4, next_attempt_at = $5, \
                     leased_until = NULL, lease_id = NULL \
                     WHERE delivery_id = $1 AND lease_id = $6 AND status IN ('PENDING', 'RETRYING')",
                )
                .bind(claimed.delivery_id)
                .bind(status)
                .bind(i32::from(http_status))
                .bind(zvv_platform::error::truncate(&error, 200))
                .bind(next)
                .bind(claimed.lease_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // a stale attempt (its lease taken over, or the delivery ended meanwhile) is
                // not recorded
                if recorded == 1 && then == AfterFailure::DeadLetter {
                    announce_dead_letters(&mut tx, &[claimed.delivery_id], now).await?;
                }
            }
            Attempt::Gone => {
                let holds: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM notifications.deliveries \
                     WHERE delivery_id = $1 AND lease_id = $2)",
                )
                .bind(claimed.delivery_id)
                .bind(claimed.lease_id)
                .fetch_one(&mut *tx)
                .await?;
                if !holds {
                    tx.rollback().await?;
                    return Ok(());
                }
                sqlx::query(
                    "UPDATE notifications.subscriptions SET status = 'DISABLED' \
                     WHERE subscription_id = $1 AND status = 'ACTIVE'",
                )
                .bind(claimed.subscription_id)
                .execute(&mut *tx)
                .await?;
                let given_up: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE notifications.deliveries SET status = 'DEAD_LETTERED', \
                     attempts = attempts + CASE WHEN delivery_id = $2 THEN 1 ELSE 0 END, \
                     last_http_status = CASE WHEN delivery_id = $2 THEN 410 ELSE last_http_status END, \
                     last_error = 'the receiver answered 410 Gone: subscription disabled', \
                     leased_until = NULL, lease_id = NULL \
                     WHERE subscription_id = $1 AND status IN ('PENDING', 'RETRYING') \
                     RETURNING delivery_id",
                )
                .bind(claimed.subscription_id)
                .bind(claimed.delivery_id)
                .fetch_all(&mut *tx)
                .await?;
                announce_dead_letters(&mut tx, &given_up, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge(
        &self,
        before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        let deleted = sqlx::query(
            "DELETE FROM notifications.events e WHERE e.published_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM notifications.deliveries d \
                 WHERE d.event_id = e.event_id AND d.status IN ('PENDING', 'RETRYING')) \
             AND NOT EXISTS (SELECT 1 FROM notifications.inbox i \
                 WHERE i.event_id = e.event_id AND i.read_at IS NULL)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        zvv_platform::idempotency::purge(&self.pool, super::SCHEMA, keys_before).await?;
        Ok(deleted)
    }
}
