//! Storage behind traits, one per aggregate; [`PgStore`] implements them all on PostgreSQL.
//!
//! Each method is one transaction. A call that succeeds commits its change, its events and its
//! audit record together; an outcome that is a failure (not found, already exists, a
//! precondition) rolls back and is returned, and the call layer audits it from the logic's error.
//! Idempotent mutations take their [`Key`]: the first response is stored with it, and a replay
//! is answered with that response and changes nothing.

mod pg;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, auth::Jurisdiction, error::ApiError, idempotency::Key};

use crate::domain::{
    CloseReason, Coordinator, Decision, Family, InformationDuty, Match, Referral, Signal,
    SignalStatus, StatisticsRow,
};

pub use pg::{PgStore, SCHEMA};

/// An idempotent call that needs another service before it can do its work: either the first
/// response under its key (audited as this call's record), or the open transaction, which holds
/// the key, to do the work in. Dropping the transaction rolls it back.
#[derive(Debug)]
pub enum Begun<T, R> {
    Replayed(R),
    Fresh(T),
}

/// What RegisterSignal answers: the signal and the matches it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub signal: Signal,
    pub matches: Vec<Match>,
}

#[derive(Debug)]
pub enum RegisterOutcome {
    Created(Box<Registered>),
    /// The organisation already has an active signal on this subject.
    Duplicate(Uuid),
}

#[derive(Debug)]
pub enum CloseOutcome {
    Closed(Box<Signal>),
    NotFound,
    NotActive(SignalStatus),
}

/// A registration in progress (see [`Begun`]).
pub trait Registration: Send {
    /// Stores the signal and brings the matches it touches up to date: the subject's CLIENT
    /// match and a FAMILY match per parent in `families`. Commits.
    fn register(
        self,
        ctx: &CallContext,
        signal: Signal,
        families: Vec<Family>,
        key: &Key,
    ) -> impl Future<Output = Result<RegisterOutcome, ApiError>> + Send;
}

pub trait SignalStore: Send + Sync + 'static {
    type Registration: Registration;

    /// Opens a RegisterSignal transaction and looks up its key (INVALID_ARGUMENT when the
    /// request id was used for another request).
    fn begin_registration(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Begun<Self::Registration, Registered>, ApiError>> + Send;

    /// Closes a signal of `organisation`; it leaves its matches.
    fn close(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        reason: CloseReason,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CloseOutcome, ApiError>> + Send;

    /// Records the information duty on a signal of `organisation`; `None` when there is none.
    fn record_information_duty(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        duty: InformationDuty,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Signal>, ApiError>> + Send;

    /// A signal of `organisation`, or `None`.
    fn get(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Signal>, ApiError>> + Send;

    /// The organisation's signals ordered by id, after the cursor.
    fn list(
        &self,
        ctx: &CallContext,
        organisation: &str,
        status: Option<SignalStatus>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Signal>, ApiError>> + Send;
}

/// A change to a match by one of its participants.
#[derive(Debug, Clone)]
pub enum MatchChange {
    AssignCoordinator(Coordinator),
    MarkCoordinated,
}

#[derive(Debug)]
pub enum MatchOutcome {
    Changed(Box<Match>),
    /// No open match with this id that the caller's organisation is in.
    NotFound,
    /// The coordinator must be a participating organisation.
    CoordinatorNotParticipant,
    /// A match can only be marked coordinated once a coordinator is assigned.
    NoCoordinator,
}

pub trait MatchStore: Send + Sync + 'static {
    fn change_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        change: MatchChange,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<MatchOutcome, ApiError>> + Send;

    /// The matches `organisation` has (or had) a signal in, ordered by id, after the cursor.
    fn list_matches(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Match>, ApiError>> + Send;

    /// A match `organisation` has a signal in, or `None`.
    fn get_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Match>, ApiError>> + Send;
}

pub trait StatisticsStore: Send + Sync + 'static {
    /// Per subject in the municipality with a signal active on some day in [from, to]: its
    /// neighbourhood, birth date and the signalling organisation's type. The logic bands the
    /// ages and leaves out small cells. Audited without ids: no person is returned.
    fn statistics(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<StatisticsRow>, ApiError>> + Send;
}

#[derive(Debug)]
pub enum DecideOutcome {
    Decided(Box<Referral>),
    NotFound,
    /// Routed to a municipality outside the caller's jurisdiction.
    OutsideJurisdiction,
    AlreadyDecided {
        subject_id: Uuid,
    },
}

/// A submission in progress (see [`Begun`]).
pub trait Submission: Send {
    /// Stores the referral with its event. Commits.
    fn submit(
        self,
        ctx: &CallContext,
        referral: Referral,
        key: &Key,
    ) -> impl Future<Output = Result<Referral, ApiError>> + Send;
}

pub trait ReferralStore: Send + Sync + 'static {
    type Submission: Submission;

    /// Opens a SubmitReferral transaction and looks up its key (INVALID_ARGUMENT when the
    /// request id was used for another request).
    fn begin_submission(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Begun<Self::Submission, Referral>, ApiError>> + Send;

    /// Referrals routed to a municipality in `scope`, ordered by id after the cursor; `decided`
    /// filters on the status, `overdue_on` keeps only those awaiting triage past their deadline
    /// on that day.
    #[allow(clippy::too_many_arguments)]
    fn list_referrals(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        decided: Option<bool>,
        overdue_on: Option<NaiveDate>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Referral>, ApiError>> + Send;

    /// Decides a referral routed to a municipality in `scope`.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        decision: Decision,
        rationale: String,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DecideOutcome, ApiError>> + Send;

    /// Emits one `signalling.referral.overdue` event per referral that passed its deadline on
    /// `today`; safe on any number of replicas. Returns how many were reported.
    fn report_overdue(
        &self,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;
}

/// What was destroyed about one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectDestroyed {
    /// Its signals, active and archived.
    pub signals: Vec<Uuid>,
    pub referrals: Vec<Uuid>,
    /// Open matches the signals left (closed when they no longer hold).
    pub left: Vec<Uuid>,
    /// Closed matches without any signal left, removed.
    pub removed: Vec<Uuid>,
}

impl SubjectDestroyed {
    /// The ids an audit record of the destruction names: the subject and everything destroyed
    /// or changed, sorted.
    pub fn audited(&self, subject: Uuid) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = std::iter::once(subject)
            .chain(self.signals.iter().copied())
            .chain(self.referrals.iter().copied())
            .chain(self.left.iter().copied())
            .chain(self.removed.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// An event delivered to signalling, in progress (see [`Begun`]): its transaction has recorded
/// the event as taken, and commits with the change and the call's audit record.
pub trait Delivery: Send {
    /// Everything about a deceased subject is destroyed, as retention destroys it at the age
    /// limit (with the same match events). Commits.
    fn destroy_subject(
        self,
        ctx: &CallContext,
        subject: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<SubjectDestroyed, ApiError>> + Send;

    /// The FAMILY match of `parent` is brought up to date after its relation with `child`
    /// changed: `children` are all of the parent's children by intake when `child` is one of
    /// them, `None` when it no longer is. Returns the matches it changed. Commits.
    fn refamily(
        self,
        ctx: &CallContext,
        parent: Uuid,
        child: Uuid,
        children: Option<Vec<Uuid>>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Uuid>, ApiError>> + Send;

    /// Taken without a change (an event signalling does nothing with), audited with `ids`.
    /// Commits.
    fn acknowledge(
        self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

pub trait EventStore: Send + Sync + 'static {
    type Delivery: Delivery;

    /// Opens the transaction of a delivered event and records it as taken: `Replayed` (audited
    /// with `ids`, committed) when it was taken before.
    fn begin_delivery(
        &self,
        ctx: &CallContext,
        event_id: Uuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Begun<Self::Delivery, ()>, ApiError>> + Send;
}

/// The deletions of retention, each one batch (claimed with `FOR UPDATE SKIP LOCKED`) in one
/// transaction with an audit record of `job` naming the ids. Each returns how many rows it
/// handled; zero means there is nothing left to do.
pub trait RetentionStore: Send + Sync + 'static {
    /// Active signals past their end date (before `today`) become EXPIRED (archived) and leave
    /// their matches.
    fn expire_signals(
        &self,
        job: &CallContext,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;

    /// Archived (closed or expired) signals archived before `cutoff` are destroyed.
    fn destroy_archived_signals(
        &self,
        job: &CallContext,
        cutoff: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;

    /// Everything about subjects born on or before `born_by` is destroyed: their signals
    /// (leaving their matches) and referrals. Returns (signals, referrals).
    fn destroy_at_age_limit(
        &self,
        job: &CallContext,
        born_by: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(u64, u64), ApiError>> + Send;

    /// Referrals decided before `decided_before` are destroyed.
    fn destroy_decided_referrals(
        &self,
        job: &CallContext,
        decided_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;

    /// Closed matches without any signal left are removed.
    fn drop_empty_matches(&self) -> impl Future<Output = Result<u64, ApiError>> + Send;

    /// Idempotency keys (and the first responses kept with them) stored before `cutoff` are
    /// deleted.
    fn purge_idempotency_keys(
        &self,
        cutoff: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;

    /// The record of delivered events taken more than `older_than` ago is deleted.
    fn purge_consumed_events(
        &self,
        older_than: std::time::Duration,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;
}
