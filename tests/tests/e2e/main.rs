//! End-to-end: the suite as its callers see it.

mod identity;
mod lifecycle;
mod referrals;
mod retention;
mod signalling;
mod statistics;
