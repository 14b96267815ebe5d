//! The logic of notifications, a file per aggregate: publishing, subscriptions, the inbox and
//! deliveries. Each checks its request (platform `Violations`), applies the domain rules, calls
//! the store, and returns `ApiError` on failure.

mod deliveries;
mod inbox;
mod publish;
mod subscriptions;

use std::sync::Arc;

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;
use zvv_platform::{clock::SharedClock, error::ApiError, idempotency::FingerprintKey};

pub use inbox::{InboxStream, StreamItem, StreamSettings};
pub use subscriptions::{ChannelInput, CreateInput, CreatedSubscription, DeliveryInput};

use crate::{
    clients::{HttpWebhooks, Sinks},
    jobs::delivery::DeliverySettings,
    secrets::Secrets,
};

/// What the logic is built from.
pub struct NotificationLogic<S, K> {
    store: Arc<S>,
    webhooks: Arc<HttpWebhooks>,
    sinks: Arc<K>,
    secrets: Arc<Secrets>,
    fingerprints: FingerprintKey,
    clock: SharedClock,
    settings: DeliverySettings,
    stream: StreamSettings,
    /// Poked after a Publish made deliveries: the workers of this replica start a round.
    wake_workers: Arc<Notify>,
    /// The organisations that got inbox items, after each Publish and from the watcher: their
    /// streams read at once.
    inbox_news: broadcast::Sender<Arc<[String]>>,
    /// The inbox watcher of this replica, started with the first stream.
    watcher: std::sync::Mutex<Option<zvv_platform::jobs::Job>>,
    /// Open streams per organisation on this replica.
    open_streams: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl<S, K: Sinks> NotificationLogic<S, K> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<S>,
        webhooks: Arc<HttpWebhooks>,
        sinks: Arc<K>,
        secrets: Arc<Secrets>,
        clock: SharedClock,
        settings: DeliverySettings,
        stream: StreamSettings,
        wake_workers: Arc<Notify>,
    ) -> Self {
        let (inbox_news, _) = broadcast::channel(1024);
        Self {
            fingerprints: secrets.fingerprint_key(),
            store,
            webhooks,
            sinks,
            secrets,
            clock,
            settings,
            stream,
            wake_workers,
            inbox_news,
            watcher: std::sync::Mutex::new(None),
            open_streams: Arc::default(),
        }
    }
}

/// Ids from a request list: 1..=`max` UUIDs, each checked under `field[i]`.
fn parse_ids(
    field: &str,
    values: &[String],
    max: usize,
    v: &mut zvv_platform::error::Violations,
) -> Vec<Uuid> {
    if values.is_empty() {
        v.add(field, "must name at least one id");
        return Vec::new();
    }
    if values.len() > max {
        v.add(field, format!("must name at most {max} ids"));
        return Vec::new();
    }
    let mut ids = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let id = v.check(
            &format!("{field}[{i}]"),
            Uuid::parse_str(value).map_err(|_| "must be a UUID"),
        );
        if let Some(id) = id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::NotFound(format!("{what} {id} not found"))
}
