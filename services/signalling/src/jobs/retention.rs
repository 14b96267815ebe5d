//! Retention: signals expire at their end date into the historical archive, archived signals
//! are destroyed after five years, everything about a subject is destroyed from their 23rd
//! birthday (when the birth date is known), and a decided referral is destroyed a retention
//! period (five years by default) after its decision whether or not a birth date is known. Runs
//! in batches under `FOR UPDATE SKIP LOCKED`, so any number of replicas may run it; every batch of
//! deletions leaves an audit record with the ids.

use chrono::{DateTime, Months, NaiveDate, Utc};
use sqlx::PgPool;
use zvv_platform::{audit::CallContext, error::ApiError};

use crate::{
    domain::latest_birth_date_at_age_limit,
    store::{PgStore, RetentionStore},
};

/// Years a closed or expired signal stays in the archive.
pub const ARCHIVE_YEARS: u32 = 5;
/// Age at which everything about a subject is destroyed.
pub const DESTROY_AT_AGE: u32 = crate::domain::AGE_LIMIT;
/// Default months a decided referral is kept after its decision.
pub const DEFAULT_DECIDED_REFERRAL_MONTHS: u32 = 60;

/// The configurable periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRules {
    /// Months a decided referral is kept after its decision.
    pub decided_referral_months: u32,
}

impl Default for RetentionRules {
    fn default() -> Self {
        Self {
            decided_referral_months: DEFAULT_DECIDED_REFERRAL_MONTHS,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired: u64,
    pub archive_destroyed: u64,
    pub signals_destroyed_at_23: u64,
    pub referrals_destroyed_at_23: u64,
    pub decided_referrals_destroyed: u64,
}

/// The identity retention's audit records carry, for one of its rules.
fn job(action: &str) -> CallContext {
    CallContext::for_job(
        format!("retention/{action}"),
        "",
        "retention-job",
        "zvv-signalling",
        "Jeugdwet art. 7.1.5.1-7.1.5.2: retention periods of the signalling index",
    )
}

/// Runs every retention rule once for `today` on `store`.
pub async fn run_on<S: RetentionStore>(
    store: &S,
    rules: &RetentionRules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<RetentionReport, ApiError> {
    let mut report = RetentionReport::default();
    let ctx = job("expire-signals");
    loop {
        let n = store.expire_signals(&ctx, today, now).await?;
        report.expired += n;
        if n == 0 {
            break;
        }
    }
    let archive_cutoff = today
        .checked_sub_months(Months::new(12 * ARCHIVE_YEARS))
        .unwrap_or(NaiveDate::MIN);
    let ctx = job("destroy-archived-signals");
    loop {
        let n = store
            .destroy_archived_signals(&ctx, archive_cutoff, now)
            .await?;
        report.archive_destroyed += n;
        if n == 0 {
            break;
        }
    }
    let born_by = latest_birth_date_at_age_limit(today);
    let ctx = job("destroy-at-23");
    loop {
        let (signals, referrals) = store.destroy_at_age_limit(&ctx, born_by, now).await?;
        report.signals_destroyed_at_23 += signals;
        report.referrals_destroyed_at_23 += referrals;
        if signals + referrals == 0 {
            break;
        }
    }
    let decided_before = now
        .checked_sub_months(Months::new(rules.decided_referral_months))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let ctx = job("destroy-decided-referrals");
    loop {
        let n = store
            .destroy_decided_referrals(&ctx, decided_before, now)
            .await?;
        report.decided_referrals_destroyed += n;
        if n == 0 {
            break;
        }
    }
    store.drop_empty_matches().await?;
    Ok(report)
}

/// Runs every retention rule once for `today` on the database of `pool`.
pub async fn run(
    pool: &PgPool,
    rules: &RetentionRules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<RetentionReport, ApiError> {
    run_on(&PgStore::new(pool.clone()), rules, today, now).await
}
