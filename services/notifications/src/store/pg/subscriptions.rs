//! Subscriptions of an organisation: create, read, list, delete.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key};

use super::{
    PgStore, SUBSCRIPTION_COLUMNS, abandon, commit, first_response, remember, subscription_from_row,
};
use crate::{
    domain::subscriptions::{Delivery, Subscription},
    store::{Created, NewSubscription, Page, SubscriptionStore},
};

async fn fetch(
    conn: &mut sqlx::PgConnection,
    organisation: &str,
    id: Uuid,
) -> Result<Option<Subscription>, ApiError> {
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM notifications.subscriptions s \
         WHERE s.subscription_id = $1 AND s.organisation = $2 AND s.status <> 'DELETED'"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(organisation)
        .fetch_optional(conn)
        .await?
        .map(|r| subscription_from_row(&r))
        .transpose()
}

impl SubscriptionStore for PgStore {
    async fn create_subscription(
        &self,
        ctx: &CallContext,
        new: NewSubscription,
        key: &Key,
    ) -> Result<Created, ApiError> {
        let s = &new.subscription;
        let now = s.created_at;
        let mut tx = self.pool.begin().await?;
        if let Some(first) = first_response::<Uuid>(&mut tx, key).await? {
            let Some(existing) = fetch(&mut tx, &s.subscriber.organisation, first).await? else {
                // the first one was deleted since: the replay says so rather than making another
                abandon(tx).await?;
                return Err(ApiError::FailedPrecondition(
                    "the subscription this request_id created has been deleted since".into(),
                ));
            };
            commit(tx, ctx, vec![existing.id], now).await?;
            return Ok(Created::Replayed(existing));
        }
        let roles: Vec<&str> = s.subscriber.roles.iter().map(|r| r.as_str()).collect();
        let service = match &s.delivery {
            Delivery::Service { name } => Some(name.clone()),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO notifications.subscriptions (subscription_id, organisation, \
             organisation_type, created_by, creator_roles, municipalities, delivery, webhook_url, \
             authorization_sealed, secret_sealed, service_name, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'ACTIVE', $12)",
        )
        .bind(s.id)
        .bind(&s.subscriber.organisation)
        .bind(s.subscriber.organisation_type.as_str())
        .bind(&s.created_by)
        .bind(&roles)
        .bind(&s.subscriber.municipalities)
        .bind(s.delivery.kind())
        .bind(&new.webhook_url)
        .bind(&new.authorization_sealed)
        .bind(&new.secret_sealed)
        .bind(&service)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let channels: Vec<&str> = s.channels.iter().map(|c| c.channel.as_str()).collect();
        let filters: Vec<sqlx::types::Json<&crate::domain::events::Filters>> = s
            .channels
            .iter()
            .map(|c| sqlx::types::Json(&c.filters))
            .collect();
        sqlx::query(
            "INSERT INTO notifications.subscription_channels (subscription_id, channel, filters) \
             SELECT $1, c, f FROM unnest($2::text[], $3::jsonb[]) AS t(c, f)",
        )
        .bind(s.id)
        .bind(&channels)
        .bind(&filters)
        .execute(&mut *tx)
        .await?;
        remember(&mut tx, key, &s.id, now).await?;
        commit(tx, ctx, vec![s.id], now).await?;
        Ok(Created::Fresh(new.subscription))
    }

    async fn replayed_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscription>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(first) = first_response::<Uuid>(&mut tx, key).await? else {
            abandon(tx).await?;
            return Ok(None);
        };
        let Some(existing) = fetch(&mut tx, organisation, first).await? else {
            abandon(tx).await?;
            return Err(ApiError::FailedPrecondition(
                "the subscription this request_id created has been deleted since".into(),
            ));
        };
        commit(tx, ctx, vec![existing.id], now).await?;
        Ok(Some(existing))
    }

    async fn count_subscriptions(&self, organisation: &str) -> Result<i64, ApiError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM notifications.subscriptions \
             WHERE organisation = $1 AND status <> 'DELETED'",
        )
        .bind(organisation)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscription>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(found) = fetch(&mut tx, organisation, id).await? else {
            abandon(tx).await?;
            return Ok(None);
        };
        commit(tx, ctx, vec![found.id], now).await?;
        Ok(Some(found))
    }

    async fn list_subscriptions(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Page<Subscription>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM notifications.subscriptions s \
             WHERE s.organisation = $1 AND s.status <> 'DELETED' \
               AND ($2::uuid IS NULL OR s.subscription_id > $2) \
             ORDER BY s.subscription_id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organisation)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *tx)
            .await?;
        let items = rows
            .iter()
            .map(subscription_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next) = zvv_platform::paging::page(items, limit, |s| s.id);
        commit(tx, ctx, items.iter().map(|s| s.id).collect(), now).await?;
        Ok(Page {
            items,
            next: next.map(|id| zvv_platform::paging::id_token(&[id])),
        })
    }

    async fn delete_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Result<bool, ApiError> {
        let mut tx = self.pool.begin().await?;
        if first_response::<Uuid>(&mut tx, key).await?.is_some() {
            commit(tx, ctx, vec![id], now).await?;
            return Ok(true);
        }
        let deleted = sqlx::query(
            "UPDATE notifications.subscriptions SET status = 'DELETED', deleted_at = $3, \
             authorization_sealed = NULL, secret_sealed = NULL \
             WHERE subscription_id = $1 AND organisation = $2 AND status <> 'DELETED'",
        )
        .bind(id)
        .bind(organisation)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            abandon(tx).await?;
            return Ok(false);
        }
        // nothing more goes out for it
        sqlx::query(
            "UPDATE notifications.deliveries SET status = 'DEAD_LETTERED', \
             last_error = 'subscription deleted', leased_until = NULL, lease_id = NULL \
             WHERE subscription_id = $1 AND status IN ('PENDING', 'RETRYING')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        remember(&mut tx, key, &id, now).await?;
        commit(tx, ctx, vec![id], now).await?;
        Ok(true)
    }
}
