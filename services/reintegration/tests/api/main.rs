//! Integration tests of reintegration's DetentionService and ContinuityService through the
//! generated clients over real TCP, with intake running next to it (real gRPC between them) and
//! a real PostgreSQL database (a fresh one per test).

mod helpers;

mod events;
mod idempotency;
mod jurisdiction;
mod lifecycle;
mod matrix;
mod policy;
mod retention;
mod statistics;
mod validation;
