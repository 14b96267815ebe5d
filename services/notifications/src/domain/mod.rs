//! Pure rules and types of notifications (no tonic, no sqlx): the channels, events and who may
//! receive them, subscriptions, deliveries with their backoff, the webhook body and signature,
//! and where a webhook may point.

pub mod channels;
pub mod deliveries;
pub mod events;
pub mod subscriptions;
pub mod target;
pub mod webhook;
