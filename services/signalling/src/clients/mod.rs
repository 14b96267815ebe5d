//! What signalling needs of other services, as ports the logic calls; [`intake`] holds the gRPC
//! implementation. Only intake sees a BSN: signalling keeps the `subject_id` it gets back.

pub mod intake;

use std::future::Future;

use chrono::NaiveDate;
use uuid::Uuid;
use zvv_platform::{auth::Principal, bsn::Bsn, error::ApiError};

pub use crate::domain::Family;
pub use intake::{IntakeClient, IntakeService};

/// Who a request is about.
#[derive(Debug, Clone)]
pub enum SubjectRef {
    Bsn(Bsn),
    Id(Uuid),
}

impl SubjectRef {
    /// The subject as the request named it, for request fingerprints (which are keyed: a BSN
    /// never goes into an unkeyed hash).
    pub fn canonical(&self) -> String {
        match self {
            Self::Bsn(bsn) => format!("bsn:{}", bsn.expose()),
            Self::Id(id) => format!("id:{id}"),
        }
    }
}

/// What intake records when a lookup by BSN registers the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSubjectFacts {
    pub municipality_code: Option<String>,
    pub birth_date: Option<NaiveDate>,
}

/// What intake knows about a subject, as far as signalling needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectContext {
    pub subject_id: Uuid,
    pub birth_date: Option<NaiveDate>,
    pub date_of_death: Option<NaiveDate>,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
    /// One per parent or guardian of the subject, with all of their children.
    pub families: Vec<Family>,
}

/// The outcome of [`Intake::subject_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(SubjectContext),
    /// Intake does not know the subject; for a BSN, its lookup reference (to audit the attempt).
    Unknown {
        lookup_ref: Option<Uuid>,
    },
}

/// The identity registry as signalling sees it: one call per request that needs it.
pub trait Intake: Send + Sync + 'static {
    /// What intake knows of the subject and its families, asked on behalf of `user` (the end
    /// user this service works for, named in intake's audit). With `create`, an unknown BSN is
    /// registered with those facts.
    fn subject_context(
        &self,
        user: &Principal,
        subject: &SubjectRef,
        create: Option<&NewSubjectFacts>,
    ) -> impl Future<Output = Result<Lookup, ApiError>> + Send;
}
