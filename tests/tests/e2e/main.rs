//! End-to-end: the suite as its callers see it.

mod identity;
mod lifecycle;
mod referrals;
mod signalling;
mod statistics;
