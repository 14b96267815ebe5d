//! Background work, on every replica: the delivery workers (leasing due deliveries with
//! `FOR UPDATE SKIP LOCKED`) and the purge of old events and idempotency keys.

pub mod delivery;

use std::{sync::Arc, time::Duration};

use zvv_platform::{clock::SharedClock, jobs::Job};

use crate::store::DeliveryStore;

/// How long events and read inbox items are kept, and idempotency keys.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events: chrono::Duration,
    pub idempotency_keys: chrono::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: chrono::Duration::days(30),
            idempotency_keys: chrono::Duration::hours(24),
        }
    }
}

/// Starts the purge (every 10 minutes).
pub fn start_purge<S: DeliveryStore>(
    store: Arc<S>,
    clock: SharedClock,
    retention: Retention,
) -> Job {
    zvv_platform::jobs::every("notifications.purge", Duration::from_secs(600), move || {
        let store = store.clone();
        let now = clock.now();
        async move {
            store
                .purge(now - retention.events, now - retention.idempotency_keys)
                .await
        }
    })
}
