//! Integration tests of intake's SubjectService through the generated client over real TCP,
//! against a real PostgreSQL database (a fresh one per test).

mod helpers;

mod audit;
mod audit_chain;
mod auth;
mod binary;
mod context;
mod errors;
mod health;
mod jurisdiction;
mod keys;
mod limits;
mod matrix;
mod migrations;
mod outbox;
mod privacy;
mod relations;
mod subjects;
mod validation;
