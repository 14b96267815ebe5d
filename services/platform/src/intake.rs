//! What a service needs of intake, the identity registry: the port ([`Intake`]) its logic calls,
//! the types of that call, and [`IntakeService`], its gRPC implementation. Only intake sees a
//! BSN: the service keeps the `subject_id` it gets back. [`SubjectInput`] is how a request names
//! its subject before it is checked.

use std::future::Future;

use chrono::NaiveDate;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;
use zvv_proto::intake::v1::{
    GetSubjectContextRequest, get_subject_context_request,
    subject_service_client::SubjectServiceClient,
};

use crate::{
    auth::Principal,
    bsn::Bsn,
    client::{Outgoing, on_behalf_of},
    error::{ApiError, Violations, error_info_entry},
    ids::parse_id,
};

/// How the request names its subject, unchecked.
#[derive(Clone)]
pub enum SubjectInput {
    Bsn(String),
    SubjectId(String),
    Missing,
}

impl std::fmt::Debug for SubjectInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bsn(_) => f.write_str("Bsn(<redacted>)"),
            Self::SubjectId(id) => write!(f, "SubjectId({id})"),
            Self::Missing => f.write_str("Missing"),
        }
    }
}

impl SubjectInput {
    /// The subject, or a violation naming `bsn`, `subject_id` or `subject`.
    pub fn parse(&self, v: &mut Violations) -> Option<SubjectRef> {
        match self {
            Self::Bsn(b) => v
                .check("bsn", Bsn::parse(b).map_err(|e| e.to_string()))
                .map(SubjectRef::Bsn),
            Self::SubjectId(id) => v
                .take("subject_id", parse_id("subject_id", id))
                .map(SubjectRef::Id),
            Self::Missing => {
                v.add("subject", "a bsn or a subject_id is required");
                None
            }
        }
    }
}

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

/// A parent (or guardian) and all of their children, as intake relates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub parent: Uuid,
    pub children: Vec<Uuid>,
}

/// What intake records when a lookup by BSN registers the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSubjectFacts {
    pub municipality_code: Option<String>,
    pub birth_date: Option<NaiveDate>,
}

/// What intake knows about a subject, as far as the service needs it.
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

/// The identity registry as the service sees it: one call per request that needs it.
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

/// Intake's SubjectService client, with the calling service's own SERVICE token.
pub type IntakeClient = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;

/// [`Intake`] over gRPC, backed by intake's SubjectService: one `GetSubjectContext` call per
/// request, with the calling service's own SERVICE token, on behalf of the end user (intake's
/// audit names both).
#[derive(Clone)]
pub struct IntakeService {
    client: IntakeClient,
}

impl IntakeService {
    pub fn new(client: IntakeClient) -> Self {
        Self { client }
    }
}

fn unavailable(status: &tonic::Status) -> ApiError {
    tracing::warn!(code = ?status.code(), message = status.message(), "intake call failed");
    ApiError::Unavailable("the identity registry (intake) is unavailable; retry later".into())
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(s).map_err(|_| ApiError::internal("intake returned a malformed id"))
}

impl Intake for IntakeService {
    async fn subject_context(
        &self,
        user: &Principal,
        subject: &SubjectRef,
        create: Option<&NewSubjectFacts>,
    ) -> Result<Lookup, ApiError> {
        let facts = create.cloned().unwrap_or_default();
        let request = GetSubjectContextRequest {
            subject: Some(match subject {
                SubjectRef::Bsn(bsn) => get_subject_context_request::Subject::Bsn(bsn.expose()),
                SubjectRef::Id(id) => {
                    get_subject_context_request::Subject::SubjectId(id.to_string())
                }
            }),
            create_if_missing: create.is_some(),
            municipality_code: facts.municipality_code.unwrap_or_default(),
            birth_date: facts
                .birth_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        };
        let answer = self
            .client
            .clone()
            .get_subject_context(on_behalf_of(request, user))
            .await;
        let context = match answer {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Ok(Lookup::Unknown {
                    lookup_ref: error_info_entry(&s, "lookup_ref")
                        .and_then(|r| Uuid::try_parse(&r).ok()),
                });
            }
            Err(s) => return Err(unavailable(&s)),
        };
        let families = context
            .families
            .iter()
            .map(|f| {
                Ok(Family {
                    parent: id(&f.parent_subject_id)?,
                    children: f
                        .child_subject_ids
                        .iter()
                        .map(|c| id(c))
                        .collect::<Result<_, ApiError>>()?,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Lookup::Found(SubjectContext {
            subject_id: id(&context.subject_id)?,
            birth_date: date(&context.birth_date),
            date_of_death: date(&context.date_of_death),
            municipality_code: non_empty(context.municipality_code),
            neighbourhood_code: non_empty(context.neighbourhood_code),
            families,
        }))
    }
}
