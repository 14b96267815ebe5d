//! Ports: what notifications needs of the outside world, as traits and types, with their
//! implementations beside them: webhooks over HTTP(S) (`webhook.rs`) and the EventSink of suite
//! services over gRPC (`sink.rs`).

mod sink;
mod webhook;

use std::future::Future;

pub use sink::{ServiceSinks, SinkEndpoints};
pub use webhook::HttpWebhooks;

use crate::domain::events::Event;

/// One HTTP POST to a webhook.
#[derive(Clone)]
pub struct WebhookRequest {
    pub url: String,
    /// The Authorization header, if the subscription has one (never logged).
    pub authorization: Option<String>,
    pub webhook_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| ".."))
            .field("webhook_id", &self.webhook_id)
            .field("timestamp", &self.timestamp)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// How a POST ended: the receiver's HTTP status, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAnswer {
    Status(u16),
    /// No answer: refused address, connection failure, timeout (a few words, no secrets).
    NoAnswer(String),
}

pub trait Webhooks: Send + Sync + 'static {
    /// POSTs within `timeout`; the URL's addresses are checked against the target policy at
    /// connection time.
    fn post(
        &self,
        request: WebhookRequest,
        timeout: std::time::Duration,
    ) -> impl Future<Output = WebhookAnswer> + Send;
}

pub trait Sinks: Send + Sync + 'static {
    /// Delivers to `service`'s EventSink; `Err` with a few words when it did not acknowledge.
    fn deliver(
        &self,
        service: &str,
        subscription_id: uuid::Uuid,
        event: &Event,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Whether a sink is configured for `service`.
    fn knows(&self, service: &str) -> bool;
}
