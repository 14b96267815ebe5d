//! The PostgreSQL store (schema `notifications`): a file per aggregate, the helpers they share
//! here.

mod deliveries;
mod events;
mod inbox;
mod subscriptions;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use zvv_platform::{
    audit::{self, CallContext},
    auth::{OrgType, Role},
    db::Schema,
    error::ApiError,
    idempotency::{self, Key},
};

use crate::domain::{
    events::{Audience, Event, Subscriber},
    subscriptions::{ChannelFilter, Delivery, Subscription, SubscriptionStatus},
};

pub const SCHEMA: Schema = Schema::new("notifications");

/// The PostgreSQL store of events, subscriptions, deliveries and inboxes.
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

const EVENT_COLUMNS: &str = "e.event_id, e.source, e.channel, e.resource, e.resource_id, \
    e.action, e.occurred_at, e.attributes, e.audience_organisations, e.audience_municipalities, \
    e.trace_parent";

fn event_from_row(row: &PgRow) -> Result<Event, ApiError> {
    let attributes: sqlx::types::Json<BTreeMap<String, String>> = row.try_get("attributes")?;
    let organisations: Vec<String> = row.try_get("audience_organisations")?;
    let municipalities: Vec<String> = row.try_get("audience_municipalities")?;
    Ok(Event {
        id: row.try_get("event_id")?,
        source: row.try_get("source")?,
        channel: row.try_get("channel")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
        action: row.try_get("action")?,
        occurred_at: row.try_get("occurred_at")?,
        attributes: attributes.0,
        audience: Audience {
            organisations: organisations.into_iter().collect(),
            municipalities: municipalities.into_iter().collect(),
        },
        trace_parent: row.try_get("trace_parent")?,
    })
}

const SUBSCRIPTION_COLUMNS: &str = "s.subscription_id, s.organisation, s.organisation_type, \
    s.created_by, s.creator_roles, s.municipalities, s.delivery, s.webhook_url, s.service_name, \
    s.status, s.created_at, \
    COALESCE((SELECT jsonb_agg(jsonb_build_array(c.channel, c.filters) ORDER BY c.channel) \
              FROM notifications.subscription_channels c \
              WHERE c.subscription_id = s.subscription_id), '[]'::jsonb) AS channels";

fn subscription_from_row(row: &PgRow) -> Result<Subscription, ApiError> {
    let org_type: String = row.try_get("organisation_type")?;
    let roles: Vec<String> = row.try_get("creator_roles")?;
    let delivery: String = row.try_get("delivery")?;
    let status: String = row.try_get("status")?;
    let channels: sqlx::types::Json<Vec<(String, BTreeMap<String, String>)>> =
        row.try_get("channels")?;
    let delivery = match delivery.as_str() {
        "INBOX" => Delivery::Inbox,
        "WEBHOOK" => Delivery::Webhook {
            url: row
                .try_get::<Option<String>, _>("webhook_url")?
                .unwrap_or_default(),
        },
        "SERVICE" => Delivery::Service {
            name: row
                .try_get::<Option<String>, _>("service_name")?
                .unwrap_or_default(),
        },
        other => return Err(ApiError::internal(format!("stored delivery {other:?}"))),
    };
    Ok(Subscription {
        id: row.try_get("subscription_id")?,
        subscriber: Subscriber {
            organisation: row.try_get("organisation")?,
            organisation_type: org_type.parse::<OrgType>().map_err(ApiError::internal)?,
            roles: roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<_, _>>()
                .map_err(ApiError::internal)?,
            municipalities: row.try_get("municipalities")?,
        },
        created_by: row.try_get("created_by")?,
        channels: channels
            .0
            .into_iter()
            .map(|(channel, filters)| ChannelFilter { channel, filters })
            .collect(),
        delivery,
        status: SubscriptionStatus::parse(&status)
            .ok_or_else(|| ApiError::internal(format!("stored subscription status {status:?}")))?,
        created_at: row.try_get("created_at")?,
    })
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

/// The ids an audit record of an event names: the event and, when it is an id, its resource.
fn event_ids(event: &Event) -> Vec<Uuid> {
    let mut ids = vec![event.id];
    if let Ok(id) = Uuid::parse_str(&event.resource_id) {
        ids.push(id);
    }
    ids
}
