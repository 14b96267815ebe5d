//! Background work on every replica: the idempotency purge (and that of the record of delivered
//! events), the overdue-referral monitor and retention. Each claims its rows with `FOR UPDATE
//! SKIP LOCKED`, so any number of replicas may run them at once.

pub mod retention;

use std::{sync::Arc, time::Duration};

use zvv_platform::{clock::SharedClock, jobs::Job};

use crate::store::{ReferralStore, RetentionStore};

/// How often expired idempotency keys are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// How often referrals past their triage deadline are looked for.
pub const OVERDUE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the retention rules run.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// How long the record of a delivered event is kept (a redelivery within it is a duplicate;
/// one after it is taken again, which changes nothing that was not changed already).
pub const CONSUMED_EVENTS_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The running jobs; dropping this stops them.
#[derive(Debug)]
pub struct Jobs {
    _jobs: Vec<Job>,
}

/// Starts the interval jobs on `store`.
pub fn start<S: ReferralStore + RetentionStore>(
    store: Arc<S>,
    clock: SharedClock,
    idempotency_retention: chrono::Duration,
    rules: retention::RetentionRules,
) -> Jobs {
    let purge = {
        let (store, clock) = (store.clone(), clock.clone());
        zvv_platform::jobs::every("purge-idempotency-keys", PURGE_INTERVAL, move || {
            let (store, cutoff) = (store.clone(), clock.now() - idempotency_retention);
            async move { store.purge_idempotency_keys(cutoff).await }
        })
    };
    let consumed = {
        let store = store.clone();
        zvv_platform::jobs::every("purge-consumed-events", PURGE_INTERVAL, move || {
            let store = store.clone();
            async move { store.purge_consumed_events(CONSUMED_EVENTS_RETENTION).await }
        })
    };
    let overdue = {
        let (store, clock) = (store.clone(), clock.clone());
        zvv_platform::jobs::every("report-overdue-referrals", OVERDUE_INTERVAL, move || {
            let (store, today, now) = (store.clone(), clock.today(), clock.now());
            async move { store.report_overdue(today, now).await }
        })
    };
    let retention = zvv_platform::jobs::every("retention", RETENTION_INTERVAL, move || {
        let (store, today, now) = (store.clone(), clock.today(), clock.now());
        async move { retention::run_on(&*store, &rules, today, now).await }
    });
    Jobs {
        _jobs: vec![purge, consumed, overdue, retention],
    }
}
