//! Publish: the event once, routed to every subscription that may receive it.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError};

use super::{PgStore, SUBSCRIPTION_COLUMNS, commit, event_ids, subscription_from_row};
use crate::{
    domain::{
        channels,
        events::{Event, filters_hold, may_receive},
        subscriptions::Delivery,
    },
    store::{EventStore, Published},
};

/// What keeps deliveries in order: one resource of one channel.
pub(super) fn resource_key(event: &Event) -> String {
    format!("{}/{}/{}", event.channel, event.resource, event.resource_id)
}

impl EventStore for PgStore {
    async fn publish(
        &self,
        ctx: &CallContext,
        event: &Event,
        now: DateTime<Utc>,
        give_up_at: DateTime<Utc>,
    ) -> Result<Published, ApiError> {
        let channel = channels::channel(&event.channel)
            .ok_or_else(|| ApiError::invalid("event.channel", "is not a channel"))?;
        let mut tx = self.pool.begin().await?;
        let organisations: Vec<&String> = event.audience.organisations.iter().collect();
        let municipalities: Vec<&String> = event.audience.municipalities.iter().collect();
        let inserted = sqlx::query(
            "INSERT INTO notifications.events (event_id, source, channel, resource, resource_id, \
             action, occurred_at, attributes, audience_organisations, audience_municipalities, \
             trace_parent, published_at, published_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.id)
        .bind(&event.source)
        .bind(&event.channel)
        .bind(&event.resource)
        .bind(&event.resource_id)
        .bind(&event.action)
        .bind(event.occurred_at)
        .bind(sqlx::types::Json(&event.attributes))
        .bind(&organisations)
        .bind(&municipalities)
        .bind(&event.trace_parent)
        .bind(now)
        .bind(ctx.principal().org)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            commit(tx, ctx, event_ids(event), now).await?;
            return Ok(Published {
                duplicate: true,
                ..Default::default()
            });
        }
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS}, c.filters AS channel_filters \
             FROM notifications.subscriptions s \
             JOIN notifications.subscription_channels c ON c.subscription_id = s.subscription_id \
             WHERE c.channel = $1 AND s.status = 'ACTIVE'"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&event.channel)
            .fetch_all(&mut *tx)
            .await?;
        let mut deliveries: Vec<(Uuid, Uuid, String)> = Vec::new();
        let mut inbox: Vec<(Uuid, Uuid, String)> = Vec::new();
        for row in &rows {
            let subscription = subscription_from_row(row)?;
            let filters: sqlx::types::Json<crate::domain::events::Filters> =
                sqlx::Row::try_get(row, "channel_filters")?;
            if !may_receive(event, channel, &subscription.subscriber)
                || !filters_hold(&filters.0, event)
            {
                continue;
            }
            let org = subscription.subscriber.organisation.clone();
            match subscription.delivery {
                Delivery::Inbox => inbox.push((zvv_platform::ids::new_id(), subscription.id, org)),
                Delivery::Webhook { .. } | Delivery::Service { .. } => {
                    deliveries.push((zvv_platform::ids::new_id(), subscription.id, org));
                }
            }
        }
        let mut delivery_count = 0;
        if !deliveries.is_empty() {
            let (ids, subs, orgs) = unzip3(deliveries);
            delivery_count = sqlx::query(
                "INSERT INTO notifications.deliveries (delivery_id, event_id, subscription_id, \
                 organisation, resource_key, status, created_at, give_up_at, next_attempt_at) \
                 SELECT d, $2, s, o, $3, 'PENDING', $4, $5, $4 \
                 FROM unnest($1::uuid[], $6::uuid[], $7::text[]) AS t(d, s, o)",
            )
            .bind(&ids)
            .bind(event.id)
            .bind(resource_key(event))
            .bind(now)
            .bind(give_up_at)
            .bind(&subs)
            .bind(&orgs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let mut inbox_organisations: Vec<String> = Vec::new();
        if !inbox.is_empty() {
            let (ids, subs, orgs) = unzip3(inbox);
            // one item per organisation, however many of its subscriptions hold
            inbox_organisations = sqlx::query_scalar(
                "INSERT INTO notifications.inbox (notification_id, organisation, subscription_id, \
                 kind, event_id, created_at) \
                 SELECT DISTINCT ON (o) n, o, s, 'NOTIFICATION', $2, $3 \
                 FROM unnest($1::uuid[], $4::uuid[], $5::text[]) AS t(n, s, o) \
                 ON CONFLICT DO NOTHING RETURNING organisation",
            )
            .bind(&ids)
            .bind(event.id)
            .bind(now)
            .bind(&subs)
            .bind(&orgs)
            .fetch_all(&mut *tx)
            .await?;
        }
        commit(tx, ctx, event_ids(event), now).await?;
        let inbox_items = u32::try_from(inbox_organisations.len()).unwrap_or(u32::MAX);
        let delivery_count = u32::try_from(delivery_count).unwrap_or(u32::MAX);
        Ok(Published {
            duplicate: false,
            routed: delivery_count.saturating_add(inbox_items),
            deliveries: delivery_count,
            inbox_organisations,
        })
    }
}

fn unzip3(rows: Vec<(Uuid, Uuid, String)>) -> (Vec<Uuid>, Vec<Uuid>, Vec<String>) {
    let mut out = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for (a, b, c) in rows {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
    }
    out
}
