//! Storage behind traits; [`PgStore`] implements them on PostgreSQL.
//!
//! Each method is one transaction. A call that succeeds commits its change with its audit
//! record; a failure rolls back and the call layer audits it from the logic's error. Idempotent
//! mutations take their [`Key`]: the first response is stored with it and a replay is answered
//! with that response.

mod pg;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, error::ApiError, idempotency::Key};

use crate::domain::{
    deliveries::{AfterFailure, Delivery, DeliveryStatus},
    events::Event,
    subscriptions::Subscription,
};

pub use pg::{PgStore, SCHEMA};

/// Where an inbox item stands in its organisation's inbox: items are read in this order, and a
/// stream continues after the cursor of the last item it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// The id of the transaction that wrote the item.
    pub txid: i64,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.txid, self.seq)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (txid, seq) = text.split_once('.')?;
        Some(Self {
            txid: txid.parse().ok().filter(|t| *t >= 0)?,
            seq: seq.parse().ok().filter(|s| *s >= 0)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    Notification,
    DeadLetter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: Uuid,
    pub cursor: Cursor,
    pub kind: InboxKind,
    pub event: Event,
    pub subscription_id: Uuid,
    pub delivery_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Whose inbox is read: the organisation, the channels whose items this caller may not see
/// (those whose required role the caller lacks, e.g. referrals for a colleague who is no triage
/// officer; left out in SQL), and the caller as it is now: an item is shown only when the
/// caller itself may receive its event (`domain::events::may_receive`), so that rights lost since
/// a subscription was made (a jurisdiction, a role) no longer show anything.
#[derive(Debug, Clone)]
pub struct InboxReader {
    pub organisation: String,
    pub hidden_channels: Vec<String>,
    pub caller: crate::domain::events::Subscriber,
}

impl InboxReader {
    /// Whether the caller may see this item now.
    pub fn may_see(&self, item: &InboxItem) -> bool {
        crate::domain::channels::channel(&item.event.channel).is_some_and(|channel| {
            crate::domain::events::may_receive(&item.event, channel, &self.caller)
        })
    }
}

/// The ids an audit record of inbox items names: the items, their events and the resources
/// they are about.
pub fn item_ids(items: &[InboxItem]) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(items.len() * 3);
    for item in items {
        ids.push(item.id);
        ids.push(item.event.id);
        if let Ok(resource) = Uuid::parse_str(&item.event.resource_id) {
            ids.push(resource);
        }
    }
    ids
}

/// What one read of a stream found.
#[derive(Debug, Clone, Default)]
pub struct InboxBatch {
    /// The items the reader may see.
    pub items: Vec<InboxItem>,
    /// The cursor of the last item read, seen or not.
    pub read_up_to: Option<Cursor>,
    /// Whether the read was full (more may wait).
    pub full: bool,
}

/// What Publish did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    pub duplicate: bool,
    /// Deliveries and inbox items made.
    pub routed: u32,
    /// Webhook and service deliveries among them.
    pub deliveries: u32,
    /// The organisations that got an inbox item.
    pub inbox_organisations: Vec<String>,
}

/// A new subscription with what must be kept sealed.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub subscription: Subscription,
    pub webhook_url: Option<String>,
    pub authorization_sealed: Option<Vec<u8>>,
    pub secret_sealed: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub enum Created {
    Fresh(Subscription),
    /// The first response under the request id (its secret is not handed out again).
    Replayed(Subscription),
}

/// A due delivery, leased to one worker until it reports the attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: Uuid,
    /// The lease: only its holder records the attempt.
    pub lease_id: Uuid,
    pub subscription_id: Uuid,
    /// Attempts before this one.
    pub attempts: u32,
    pub give_up_at: DateTime<Utc>,
    pub event: Event,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub enum Target {
    Webhook {
        url: String,
        authorization_sealed: Option<Vec<u8>>,
        secret_sealed: Vec<u8>,
    },
    Service {
        name: String,
    },
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        http_status: u16,
    },
    Failed {
        http_status: u16,
        error: String,
        then: AfterFailure,
    },
    /// 410 Gone: the subscription is disabled and what is pending for it is given up.
    Gone,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub trait EventStore: Send + Sync + 'static {
    /// Stores the event once (idempotent by id) and routes it in the same transaction: a
    /// delivery per webhook or service subscription and an inbox item per organisation that
    /// may receive it and whose filters hold.
    fn publish(
        &self,
        ctx: &CallContext,
        event: &Event,
        now: DateTime<Utc>,
        give_up_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Published, ApiError>> + Send;
}

pub trait SubscriptionStore: Send + Sync + 'static {
    fn create_subscription(
        &self,
        ctx: &CallContext,
        new: NewSubscription,
        key: &Key,
    ) -> impl Future<Output = Result<Created, ApiError>> + Send;

    /// The subscription a request with `key` already created (audited as this call), if any:
    /// looked up before a webhook is verified, so that a retry sends no second test
    /// notification.
    fn replayed_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Subscription>, ApiError>> + Send;

    /// How many subscriptions `organisation` has (not deleted); not audited (no personal data).
    fn count_subscriptions(
        &self,
        organisation: &str,
    ) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// A subscription of `organisation` that is not deleted; audited.
    fn get_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Subscription>, ApiError>> + Send;

    fn list_subscriptions(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Page<Subscription>, ApiError>> + Send;

    /// `false` when `organisation` has no such subscription.
    fn delete_subscription(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;
}

pub trait InboxStore: Send + Sync + 'static {
    fn list_inbox(
        &self,
        ctx: &CallContext,
        reader: &InboxReader,
        after: Option<Cursor>,
        unread_only: bool,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Page<InboxItem>, ApiError>> + Send;

    /// Items after `after` whose writing transactions have all ended (so that none can appear
    /// before the last one later), those the reader may see, and the cursor of the last item
    /// read (seen or not, so that a stream moves past what it may not show); not audited here
    /// (the stream audits what it gives).
    fn inbox_after(
        &self,
        reader: &InboxReader,
        after: Option<Cursor>,
        limit: u32,
    ) -> impl Future<Output = Result<InboxBatch, ApiError>> + Send;

    /// The organisations with items settled after `after` (all of them once every transaction
    /// that wrote them has ended), and the cursor of the last such item; with `None`, no
    /// organisations and the cursor of the newest settled item (where watching starts).
    fn settled_since(
        &self,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<Cursor>), ApiError>> + Send;

    /// Audits inbox items a stream gave (one record per batch, as the stream's call).
    fn audit_items(
        &self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Audits a call that reads no stored data (ListChannels, the opening of a stream).
    fn audit_call(
        &self,
        ctx: &CallContext,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Marks unread items of `organisation` read; returns how many.
    fn mark_read(
        &self,
        ctx: &CallContext,
        reader: &InboxReader,
        ids: &[Uuid],
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u32, ApiError>> + Send;
}

pub trait DeliveryStore: Send + Sync + 'static {
    /// `None` when `organisation` has no such subscription.
    #[allow(clippy::too_many_arguments)]
    fn list_deliveries(
        &self,
        ctx: &CallContext,
        organisation: &str,
        subscription: Uuid,
        status: Option<DeliveryStatus>,
        after: Option<i64>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Page<Delivery>>, ApiError>> + Send;

    /// Schedules deliveries of `organisation` again; ids of other organisations count as
    /// unknown. Returns how many were scheduled.
    fn redeliver(
        &self,
        ctx: &CallContext,
        organisation: &str,
        ids: &[Uuid],
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u32, ApiError>> + Send;

    /// Leases up to `limit` due deliveries of active subscriptions, each the oldest open one of
    /// its resource and subscription, until `lease_until`.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Claimed>, ApiError>> + Send;

    /// Records deliveries that succeeded (id, lease and HTTP status), in one statement; one
    /// whose lease was taken over or that was ended meanwhile is left alone.
    fn record_delivered(
        &self,
        delivered: &[(Uuid, Uuid, u16)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    fn record_attempt(
        &self,
        claimed: &Claimed,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Deletes events older than `before` whose deliveries have all ended, with their read inbox
    /// items, and idempotency keys older than `keys_before`. Returns the events deleted.
    fn purge(
        &self,
        before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;
}
