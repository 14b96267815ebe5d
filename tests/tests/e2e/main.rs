//! End-to-end: the suite as its callers see it.

mod decode;
mod error_size;
mod identity;
mod lifecycle;
mod notifications;
mod outage;
mod referrals;
mod reintegration;
mod replicas;
mod retention;
mod service_tokens;
mod signalling;
mod statistics;
mod tls;
