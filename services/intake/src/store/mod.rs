//! Storage of the registry behind a trait; [`PgStore`] is the PostgreSQL implementation. Every
//! method is one transaction that also appends the call's audit record (and any outbox event),
//! so a change and its audit trail commit together or not at all.
//!
//! Methods that read or change a subject take the caller's [`Jurisdiction`]: a subject outside it
//! is answered exactly as a missing one (`None`, `Missing`), and audited as
//! [`zvv_platform::audit::NOT_FOUND_OUTSIDE_JURISDICTION`].

mod pg;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext, auth::Jurisdiction, bsn::SealedBsn, error::ApiError, idempotency::Key,
};

use crate::domain::{Family, Relation, Unlink};

pub use pg::{PgStore, SCHEMA};

/// A subject as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    pub id: Uuid,
    pub bsn: SealedBsn,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum RegisterOutcome {
    Created(SubjectRow),
    /// The same request_id was seen before: the subject it registered.
    Replayed(SubjectRow),
    /// Another subject already has this BSN: its id and current municipality.
    BsnTaken(Uuid, Option<String>),
}

#[derive(Debug)]
pub enum ResolveOutcome {
    Found(SubjectRow),
    Created(SubjectRow),
    NotFound,
}

#[derive(Debug)]
pub enum LinkOutcome {
    Linked(Relation),
    Replayed(Relation),
    /// The named field's subject does not exist (or is outside the caller's jurisdiction).
    Missing(&'static str),
    Exists,
    Cycle,
}

#[derive(Debug)]
pub enum UnlinkOutcome {
    /// The relation as it was.
    Unlinked(Relation),
    Replayed(Relation),
    /// The named field's subject does not exist (or is outside the caller's jurisdiction).
    Missing(&'static str),
    /// The two subjects have no such relation.
    NoRelation,
}

/// Applies checked changes to a subject inside the update's transaction.
pub type Apply = Box<dyn FnOnce(&mut SubjectRow) -> Result<(), ApiError> + Send>;

pub trait SubjectStore: Send + Sync + 'static {
    fn register(
        &self,
        ctx: &CallContext,
        row: SubjectRow,
        lookup: Vec<u8>,
        idem: Key,
    ) -> impl Future<Output = Result<RegisterOutcome, ApiError>> + Send;

    /// Finds the subject with this lookup value, or creates `create` when given. `lookup_ref`
    /// names the BSN in the audit record when no subject has it.
    fn resolve(
        &self,
        ctx: &CallContext,
        lookup: Vec<u8>,
        lookup_ref: Uuid,
        create: Option<SubjectRow>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ResolveOutcome, ApiError>> + Send;

    fn get(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<SubjectRow>, ApiError>> + Send;

    /// `None` when the subject does not exist or its current municipality is outside `scope`.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        idem: Option<Key>,
        fields: Vec<&'static str>,
        apply: Apply,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<SubjectRow>, ApiError>> + Send;

    /// Both subjects must be in `scope`.
    fn link(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        relation: Relation,
        idem: Key,
    ) -> impl Future<Output = Result<LinkOutcome, ApiError>> + Send;

    /// Removes the relation parent → child; both subjects must be in `scope`.
    fn unlink(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        unlink: Unlink,
        idem: Key,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<UnlinkOutcome, ApiError>> + Send;

    /// Relations where the subject is parent or child, ordered by (parent, child), after the
    /// cursor; `None` when the subject does not exist or is outside `scope`.
    fn list_relations(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        after: Option<(Uuid, Uuid)>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Vec<Relation>>, ApiError>> + Send;

    fn family(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Family>, ApiError>> + Send;

    /// Audits a call that failed before or outside a store transaction.
    fn audit_failure(
        &self,
        ctx: &CallContext,
        ids: Vec<Uuid>,
        result: &'static str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
