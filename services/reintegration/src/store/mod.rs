//! Storage behind traits, one per aggregate; [`PgStore`] implements them all on PostgreSQL.
//!
//! Each method is one transaction. A call that succeeds commits its change, its events and its
//! audit record together; an outcome that is a failure (not found, outside the jurisdiction, a
//! precondition) rolls back and is returned, and the call layer audits it from the logic's
//! error. Idempotent mutations take their [`Key`]: the first response is stored with it, and a
//! replay is answered with that response and changes nothing.

mod pg;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zvv_platform::{audit::CallContext, contact::Contact, error::ApiError, idempotency::Key};

use crate::domain::{
    ConditionStatus, ContinuityPolicy, Detention, DetentionEvent, DueDateReason, EpisodeStatus,
    Plan, PlanCondition, ReleaseFact, Task,
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

/// Who is asking, for what the store lets them see: the responsible municipality (its
/// professionals, by the municipalities of their token) sees everything of its episodes; a
/// partner sees an episode in which its organisation holds a task (assigned or done, not
/// withdrawn), and of the plan only the conditions of its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub org: String,
    /// The municipalities whose episodes the caller may see whole (empty for a partner that is
    /// not a municipality).
    pub municipalities: Vec<String>,
}

/// One event to record, checked, with the subject intake resolved.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub external_ref: String,
    pub subject_id: Uuid,
    /// The keyed mark of the subject that links a release to a later detention.
    pub subject_mark: Vec<u8>,
    pub event: DetentionEvent,
    /// `None`: the episode keeps its municipality (a new episode needs one).
    pub municipality_code: Option<String>,
    /// The organisation that sent it.
    pub recorded_by: String,
}

/// The numbers the store needs beside the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSettings {
    /// Months the plan stays open after release for the conditions not in place.
    pub follow_up_months: u32,
}

/// What RecordDetentionEvent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub detention: Detention,
    pub duplicate: bool,
}

#[derive(Debug)]
pub enum RecordOutcome {
    Recorded(Box<Recorded>),
    /// The episode of this `external_ref` is about another person.
    OtherSubject,
    /// A new episode without a municipality.
    MunicipalityRequired,
}

/// A recording in progress (see [`Begun`]).
pub trait Recording: Send {
    /// Records the event in its episode (opening the episode and its plan with `policy` when it
    /// is new, computing the plan's open dates again with the plan's own version when the dates
    /// change, recording readiness at release). Commits.
    fn record(
        self,
        ctx: &CallContext,
        event: NewEvent,
        policy: &ContinuityPolicy,
        settings: RecordSettings,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<RecordOutcome, ApiError>> + Send;
}

/// An episode the caller may see, and whether whole (as the responsible municipality).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible<T> {
    pub item: T,
    pub whole: bool,
}

pub trait DetentionStore: Send + Sync + 'static {
    type Recording: Recording;

    /// Opens a RecordDetentionEvent transaction and looks up its key (INVALID_ARGUMENT when the
    /// request id was used for another request).
    fn begin_recording(
        &self,
        ctx: &CallContext,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Begun<Self::Recording, Recorded>, ApiError>> + Send;

    /// An episode, if `viewer` may see it (the logic answers an unknown one and one it may not
    /// see alike, as NOT_FOUND).
    fn detention(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<Visible<Detention>>, ApiError>> + Send;

    fn list_detentions(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        status: Option<EpisodeStatus>,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Visible<Detention>>, ApiError>> + Send;

    /// Records the continuity policy's numbers under its version on first use; refuses other
    /// numbers under a recorded version (a version's numbers never change).
    fn record_policy(
        &self,
        policy: &ContinuityPolicy,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), PolicyError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "continuity policy version {0} is recorded with other numbers: a changed policy needs a \
         new version (ZVV_CONTINUITY_POLICY_VERSION)"
    )]
    Changed(u32),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A checked UpdateCondition.
#[derive(Debug, Clone)]
pub struct ConditionUpdate {
    pub condition_id: Uuid,
    pub status: Option<ConditionStatus>,
    /// The new date, why, and the action (`None`: the first open one).
    pub due: Option<(NaiveDate, DueDateReason, Option<String>)>,
}

/// A checked AssignTask.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub condition_id: Uuid,
    pub organisation: String,
    pub organisation_type: String,
    pub contact: Contact,
}

/// The outcome of a call about one episode, condition or task.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    /// Unknown, or not visible to the caller (answered alike).
    NotFound,
    /// Visible as a partner only, or in another municipality: answered as NOT_FOUND, audited
    /// as outside the jurisdiction.
    OutsideJurisdiction,
    /// The change does not fit the current state (named).
    Refused(String),
}

pub trait PlanStore: Send + Sync + 'static {
    /// The plan of an episode as `viewer` may see it.
    fn plan(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        detention_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<Visible<(Detention, Plan)>>, ApiError>> + Send;

    fn update_condition(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        update: ConditionUpdate,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<PlanCondition>, ApiError>> + Send;

    fn assign_task(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        task: NewTask,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<Task>, ApiError>> + Send;

    /// Marks the first open action of the task's condition done (`today`); the last one makes
    /// the task DONE and the condition ARRANGED.
    fn complete_task(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        task_id: Uuid,
        key: &Key,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<Task>, ApiError>> + Send;

    /// The tasks of the viewer's organisation, and every task of the episodes it sees whole;
    /// open only unless `include_closed`; with `due_by`, only those whose current action is
    /// due by then.
    #[allow(clippy::too_many_arguments)]
    fn list_tasks(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        due_by: Option<NaiveDate>,
        include_closed: bool,
        after: Option<Uuid>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Task>, ApiError>> + Send;

    /// Computes the plan again with `policy` (the responsible municipality only).
    fn replan(
        &self,
        ctx: &CallContext,
        viewer: &Viewer,
        detention_id: Uuid,
        policy: &ContinuityPolicy,
        key: &Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome<Plan>, ApiError>> + Send;
}

/// What one run of the deadline monitor did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorReport {
    pub upcoming: u64,
    pub missed: u64,
}

/// What one run of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub detentions_destroyed: u64,
    pub release_marks_destroyed: u64,
}

pub trait JobStore: Send + Sync + 'static {
    /// Gives the warnings due `today` (each once, by [`crate::domain::warning_due`]) as outbox
    /// events; a missed action makes its condition LAPSED. An episode whose follow-up has ended
    /// is no longer watched. Claims its rows with `FOR UPDATE
    /// SKIP LOCKED`, so every replica may run it. Each batch is audited (`job`) with the ids of
    /// the actions warned about.
    fn run_deadline_monitor(
        &self,
        job: &CallContext,
        today: NaiveDate,
        warn_working_days: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<MonitorReport, ApiError>> + Send;

    /// Destroys the episodes released `retention_months` or more before `today` whose follow-up
    /// has ended and in which no task is still open with a date to come (the case continues),
    /// and the release marks older than the re-detention window; audited with ids only (`job`).
    fn run_retention(
        &self,
        job: &CallContext,
        today: NaiveDate,
        retention_months: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<RetentionReport, ApiError>> + Send;

    fn purge_idempotency_keys(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, ApiError>> + Send;
}

pub trait StatisticsStore: Send + Sync + 'static {
    /// The release facts of `municipality` with a release month from `from` through `to`.
    fn release_facts(
        &self,
        ctx: &CallContext,
        municipality: &str,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ReleaseFact>, ApiError>> + Send;
}
