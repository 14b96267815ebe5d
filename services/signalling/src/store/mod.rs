//! Storage of signals and matches behind a trait; [`PgStore`] is the PostgreSQL implementation.
//! Each method is one transaction that also appends the call's audit record and its events.

mod pg;
mod referrals;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, auth::Jurisdiction, error::ApiError, idempotency::Key};

use crate::{
    identity::Family,
    referrals::{Decision, Referral},
};

use crate::domain::{CloseReason, Coordinator, InformationDuty, Match, Signal, SignalStatus};

pub use pg::{PgStore, SCHEMA};

#[derive(Debug)]
pub enum RegisterOutcome {
    /// The new signal and the matches it is now part of.
    Created(Signal, Vec<Match>),
    Replayed(Signal, Vec<Match>),
    /// The organisation already has an active signal on this subject.
    Duplicate(Uuid),
}

#[derive(Debug)]
pub enum CloseOutcome {
    Closed(Box<Signal>),
    NotFound,
    NotActive(SignalStatus),
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

pub trait SignalStore: Send + Sync + 'static {
    /// Records the information duty on a signal of `organisation`; `None` when there is none.
    fn record_information_duty(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        duty: InformationDuty,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Signal>, ApiError>> + Send;

    fn change_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        change: MatchChange,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<MatchOutcome, ApiError>> + Send;

    /// The first answer to an idempotent RegisterSignal already made under `key`, if any
    /// (audited as the call's record when found); INVALID_ARGUMENT when the request id was used
    /// for another request. Writes nothing when there is none.
    fn replay(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(Signal, Vec<Match>)>, ApiError>> + Send;

    /// Stores a signal and brings the matches it touches up to date: the subject's CLIENT match
    /// and a FAMILY match per parent in `families`.
    fn register(
        &self,
        ctx: &CallContext,
        signal: Signal,
        families: Vec<Family>,
        idem: Key,
    ) -> impl Future<Output = Result<RegisterOutcome, ApiError>> + Send;

    fn close(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        reason: CloseReason,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CloseOutcome, ApiError>> + Send;

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

    /// The matches `organisation` has (or had) a signal in, ordered by id, after the cursor.
    fn list_matches(
        &self,
        ctx: &CallContext,
        organisation: &str,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Match>, ApiError>> + Send;

    fn get_match(
        &self,
        ctx: &CallContext,
        organisation: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Match>, ApiError>> + Send;

    fn audit_failure(
        &self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        result: &'static str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Per (neighbourhood, birth date, organisation type) of subjects in the municipality with a
    /// signal active on some day in [from, to]: the distinct subjects. The caller bands the ages
    /// and suppresses small cells.
    fn statistics(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, Uuid, chrono::NaiveDate, String)>, ApiError>> + Send;
}

#[derive(Debug)]
pub enum DecideOutcome {
    Decided(Box<Referral>),
    NotFound,
    AlreadyDecided,
}

/// Storage of referrals.
pub trait ReferralStore: Send + Sync + 'static {
    fn submit(
        &self,
        ctx: &CallContext,
        referral: Referral,
        idem: Key,
    ) -> impl Future<Output = Result<Referral, ApiError>> + Send;

    /// The referral an earlier SubmitReferral under `key` made, if any (audited when found);
    /// INVALID_ARGUMENT when the request id was used for another request.
    fn replay_referral(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Referral>, ApiError>> + Send;

    /// Referrals routed to a municipality in `scope`, ordered by id after the cursor; `decided`
    /// filters on the status, `overdue_on` keeps only those awaiting triage past their deadline
    /// on that day.
    #[allow(clippy::too_many_arguments)]
    fn list_referrals(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        decided: Option<bool>,
        overdue_on: Option<chrono::NaiveDate>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Referral>, ApiError>> + Send;

    /// Decides a referral routed to a municipality in `scope` (any other is `NotFound`).
    fn decide(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        decision: Decision,
        rationale: String,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DecideOutcome, ApiError>> + Send;

    /// Emits one `signalling.referral.overdue` event per referral that passed its deadline on
    /// `today`; safe on any number of replicas. Returns how many were reported.
    fn report_overdue(
        &self,
        today: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;
}
