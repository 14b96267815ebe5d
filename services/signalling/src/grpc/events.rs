//! The adapter of `zvv.events.v1.EventSink`: the platform's sink parses the delivery, this
//! hands it to the logic.

use std::sync::Arc;

use zvv_platform::{
    audit::CallContext,
    error::ApiError,
    sink::{EventHandler, Handled, ReceivedEvent},
};

use crate::{clients::Intake, service::EventLogic, store::EventStore};

pub struct EventApi<S, I> {
    logic: Arc<EventLogic<S, I>>,
}

impl<S, I> EventApi<S, I> {
    pub fn new(logic: Arc<EventLogic<S, I>>) -> Self {
        Self { logic }
    }
}

impl<S: EventStore, I: Intake> EventHandler for EventApi<S, I> {
    async fn handle(
        &self,
        ctx: &CallContext,
        _subscription_id: &str,
        event: ReceivedEvent,
    ) -> Result<Handled, ApiError> {
        self.logic.take(ctx, &event).await
    }
}
