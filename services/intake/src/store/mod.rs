//! Storage of the registry behind a trait; [`PgStore`] is the PostgreSQL implementation. Every
//! method is one transaction that also appends the call's audit record (and any outbox event),
//! so a change and its audit trail commit together or not at all.
//!
//! Only a call that succeeds is audited here, in the transaction of its effect; a store outcome
//! that is a failure (not found, already exists, …) rolls back, and the call layer audits it from
//! the error the logic makes of it. Methods that read or change a subject take the caller's
//! [`Jurisdiction`] and tell a subject outside it ([`Visible::Outside`]) from a missing one, so
//! that the logic answers both alike and the audit still tells them apart.

mod pg;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext, auth::Jurisdiction, bsn::SealedBsn, error::ApiError, idempotency::Key,
};

use crate::domain::{Family, Relation, RelationKind, Unlink};

pub(crate) use pg::seal_form;
pub use pg::{PgStore, SCHEMA};

/// A subject as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    pub id: Uuid,
    pub bsn: SealedBsn,
    /// The keyed lookup value of the BSN (`bsn_lookup`): what the sealed BSN must open to.
    pub lookup: Vec<u8>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subject (or what is read through it) as one caller may see it.
#[derive(Debug)]
pub enum Visible<T> {
    Yes(T),
    /// It exists, but its current municipality is outside the caller's jurisdiction.
    Outside,
    Missing,
}

/// The subject of a relation request that the caller cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unseen {
    pub field: &'static str,
    pub outside: bool,
}

/// How GetSubjectContext names the subject.
#[derive(Debug, Clone)]
pub enum ContextKey {
    Id(Uuid),
    /// The BSN's lookup value and its lookup reference (named in the audit record).
    Bsn {
        lookup: Vec<u8>,
        lookup_ref: Uuid,
    },
}

/// A parent or guardian of the subject with all of their children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentFamily {
    pub parent: Uuid,
    pub kind: RelationKind,
    pub children: Vec<Uuid>,
}

/// What GetSubjectContext answers.
#[derive(Debug, Clone)]
pub struct SubjectContext {
    pub subject: SubjectRow,
    pub created: bool,
    pub families: Vec<ParentFamily>,
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
    Missing(Unseen),
    Exists,
    Cycle,
}

#[derive(Debug)]
pub enum UnlinkOutcome {
    /// The relation as it was.
    Unlinked(Relation),
    Replayed(Relation),
    Missing(Unseen),
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
    ) -> impl Future<Output = Result<Visible<SubjectRow>, ApiError>> + Send;

    /// Applies the changes to a subject the caller can see.
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
    ) -> impl Future<Output = Result<Visible<SubjectRow>, ApiError>> + Send;

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
    /// cursor.
    fn list_relations(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        after: Option<(Uuid, Uuid)>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Visible<Vec<Relation>>, ApiError>> + Send;

    fn family(
        &self,
        ctx: &CallContext,
        scope: &Jurisdiction,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Visible<Family>, ApiError>> + Send;

    /// The subject's facts and families from one transaction, audited once with every id read;
    /// with a BSN key and `create`, an unknown subject is registered. `None` when unknown.
    fn context(
        &self,
        ctx: &CallContext,
        key: ContextKey,
        create: Option<SubjectRow>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<SubjectContext>, ApiError>> + Send;
}
