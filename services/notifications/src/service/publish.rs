//! Publish: a suite service hands over one event of its own.

use std::sync::Arc;

use zvv_platform::{audit::CallContext, error::ApiError};

use super::NotificationLogic;
use crate::{
    clients::Sinks,
    domain::{channels, events::Event},
    store::{EventStore, Published},
};

/// The service a SERVICE token's organisation (`zvv-<service>`) names.
pub(crate) fn service_of(org: &str) -> &str {
    org.strip_prefix("zvv-").unwrap_or(org)
}

impl<S: EventStore, K: Sinks> NotificationLogic<S, K> {
    pub async fn publish(&self, ctx: &CallContext, event: Event) -> Result<Published, ApiError> {
        ctx.attach([event.id]);
        let caller = ctx.principal();
        if event.source != service_of(&caller.org) {
            return Err(ApiError::PermissionDenied(format!(
                "{} may publish only its own events (source {})",
                caller.org,
                zvv_platform::error::quote(service_of(&caller.org))
            )));
        }
        let Some(channel) = channels::channel(&event.channel) else {
            return Err(ApiError::invalid(
                "event.channel",
                "is not a channel of this release",
            ));
        };
        if !event
            .channel
            .strip_prefix(&event.source)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            return Err(ApiError::invalid(
                "event.channel",
                "belongs to another service than event.source",
            ));
        }
        let mut v = zvv_platform::error::Violations::default();
        for key in event.attributes.keys() {
            if key == channels::ACTION_KEY || !channel.has_key(key) {
                v.add(
                    &format!("event.attributes[{}]", zvv_platform::error::quote(key)),
                    "is not a filter key of the channel",
                );
            }
        }
        v.into_result()?;
        let now = self.clock.now();
        let published = self
            .store
            .publish(ctx, &event, now, now + self.settings.backoff.window)
            .await?;
        if published.deliveries > 0 {
            self.wake_workers.notify_one();
        }
        if !published.inbox_organisations.is_empty() {
            // no receiver is fine: no stream is open on this replica
            let _ = self
                .inbox_news
                .send(Arc::from(published.inbox_organisations.clone()));
        }
        Ok(published)
    }
}
