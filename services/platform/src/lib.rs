//! What every zvv service shares: typed configuration, telemetry, the gRPC server frame (health,
//! reflection, limits, graceful shutdown, TLS with certificates renewed in place), one error
//! table, the database with a schema per service, authentication and authorization, the
//! hash-chained audit log, the outbox with its relay to notifications, the event sink, the
//! intake client, ids, the clock, the BSN type with its vault, and the checks every service
//! makes of its requests (contacts, dates and periods, paging).
//!
//! Each module does one job; services compose them, they never fork them.

pub mod adapter;
pub mod audit;
pub mod auth;
pub mod bsn;
pub mod budget;
pub mod calendar;
pub mod client;
pub mod clock;
pub mod codes;
pub mod config;
pub mod contact;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod layer;
pub mod outbox;
pub mod paging;
pub mod policy;
pub mod relay;
pub mod server;
pub mod shed;
pub mod sink;
pub mod statistics;
pub mod telemetry;
pub mod tls;

pub use zvv_proto::{prost, tonic};
