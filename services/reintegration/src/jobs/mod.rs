//! Background work on every replica: the deadline monitor, retention (episodes after release,
//! release marks after the re-detention window) and the idempotency purge. Each claims its rows
//! with `FOR UPDATE SKIP LOCKED`, so any number of replicas may run them at once, and each batch
//! is audited with the ids it concerns.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDate, Utc};
use zvv_platform::{audit::CallContext, clock::SharedClock, error::ApiError, jobs::Job};

use crate::store::{JobStore, MonitorReport, RetentionReport};

/// How often expired idempotency keys are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// How often retention runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The settings of the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// How often the deadline monitor looks.
    pub monitor_interval: Duration,
    /// Working days before a due date that its warning is given.
    pub warn_working_days: u32,
    /// Months after release that an episode and its plan are destroyed.
    pub retention_months: u32,
    pub idempotency_retention: chrono::Duration,
}

/// The identity a job's audit records carry.
fn job(action: &str, legal_basis: &str) -> CallContext {
    CallContext::for_job(
        action,
        "",
        format!("{action}-job"),
        "zvv-reintegration",
        legal_basis,
    )
}

/// Runs the deadline monitor once for `today` (what every replica does every interval).
pub async fn monitor<S: JobStore>(
    store: &S,
    today: NaiveDate,
    warn_working_days: u32,
    now: DateTime<Utc>,
) -> Result<MonitorReport, ApiError> {
    let ctx = job(
        "deadline-monitor",
        "Participatiewet art. 7 and 13; Wmo 2015 art. 2.3.1: warning the partner before a basic \
         condition lapses",
    );
    store
        .run_deadline_monitor(&ctx, today, warn_working_days, now)
        .await
}

/// Runs retention once for `today`.
pub async fn retention<S: JobStore>(
    store: &S,
    today: NaiveDate,
    retention_months: u32,
    now: DateTime<Utc>,
) -> Result<RetentionReport, ApiError> {
    let ctx = job(
        "retention",
        "AVG art. 5(1)(e): detention data and plans destroyed after the retention period",
    );
    store
        .run_retention(&ctx, today, retention_months, now)
        .await
}

/// The running jobs; dropping this stops them.
#[derive(Debug)]
pub struct Jobs {
    _jobs: Vec<Job>,
}

/// Starts the interval jobs on `store`.
pub fn start<S: JobStore>(store: Arc<S>, clock: SharedClock, settings: JobSettings) -> Jobs {
    let purge = {
        let (store, clock) = (store.clone(), clock.clone());
        zvv_platform::jobs::every("purge-idempotency-keys", PURGE_INTERVAL, move || {
            let (store, cutoff) = (store.clone(), clock.now() - settings.idempotency_retention);
            async move { store.purge_idempotency_keys(cutoff).await }
        })
    };
    let deadlines = {
        let (store, clock) = (store.clone(), clock.clone());
        // the first run one interval after the start (the clock drives it, not the start)
        zvv_platform::jobs::every_from_next(
            "deadline-monitor",
            settings.monitor_interval,
            move || {
                let (store, today, now) = (store.clone(), clock.today(), clock.now());
                async move { monitor(&*store, today, settings.warn_working_days, now).await }
            },
        )
    };
    let retention =
        zvv_platform::jobs::every_from_next("retention", RETENTION_INTERVAL, move || {
            let (store, today, now) = (store.clone(), clock.today(), clock.now());
            async move { retention(&*store, today, settings.retention_months, now).await }
        });
    Jobs {
        _jobs: vec![purge, deadlines, retention],
    }
}
