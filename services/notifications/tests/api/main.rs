//! Integration tests of NotificationService through the generated client over real TCP, with a
//! real PostgreSQL database (a fresh one per test), a real HTTP webhook receiver and a real gRPC
//! EventSink on loopback.

mod helpers;

mod bench;
mod deliveries;
mod inbox;
mod matrix;
mod publish;
mod routing;
mod subscriptions;
