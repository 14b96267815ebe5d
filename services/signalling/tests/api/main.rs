//! Integration tests of signalling's SignalService through the generated client over real TCP,
//! with intake running next to it (real gRPC between them) and a real PostgreSQL database (a
//! fresh one per test).

mod helpers;

mod audit;
mod events;
mod idempotency;
mod isolation;
mod jurisdiction;
mod keys;
mod matches;
mod matrix;
mod outbox;
mod policy;
mod preconditions;
mod register;
mod signals;
mod validation;
