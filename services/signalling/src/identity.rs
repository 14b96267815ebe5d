//! What signalling needs to know about a child, asked of intake over gRPC with this service's
//! own SERVICE token, on behalf of the end user (intake's audit names both). Only intake sees a
//! BSN; signalling keeps the `subject_id` it gets back.

use std::future::Future;

use chrono::NaiveDate;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;
use zvv_platform::{
    auth::Principal,
    bsn::Bsn,
    client::{Outgoing, on_behalf_of},
    error::ApiError,
};
use zvv_proto::intake::v1::{
    GetSubjectRequest, ListFamilyRequest, ListRelationsRequest, ResolveSubjectRequest,
    subject_service_client::SubjectServiceClient,
};

pub type IntakeClient = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;

/// Who a request is about.
#[derive(Debug, Clone)]
pub enum SubjectRef {
    Bsn(Bsn),
    Id(Uuid),
}

/// What intake knows about a subject, as far as signalling needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectFacts {
    pub subject_id: Uuid,
    pub birth_date: Option<NaiveDate>,
    pub date_of_death: Option<NaiveDate>,
    pub municipality_code: Option<String>,
    pub neighbourhood_code: Option<String>,
}

/// What intake records when a lookup creates the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSubjectFacts {
    pub municipality_code: Option<String>,
    pub birth_date: Option<NaiveDate>,
}

/// The outcome of [`Identity::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(SubjectFacts),
    /// Intake does not know the subject; for a BSN, its lookup reference (to audit the attempt).
    Unknown {
        lookup_ref: Option<Uuid>,
    },
}

/// A parent (or guardian) and all of their children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub parent: Uuid,
    pub children: Vec<Uuid>,
}

/// The identity registry as signalling sees it.
///
/// Every call names `user`, the end user this service works for.
pub trait Identity: Send + Sync + 'static {
    /// The families the subject is a child in: one per parent or guardian.
    fn families(
        &self,
        user: &Principal,
        subject: Uuid,
    ) -> impl Future<Output = Result<Vec<Family>, ApiError>> + Send;

    /// What intake knows of the subject; with `create`, an unknown BSN is registered with those
    /// facts.
    fn lookup(
        &self,
        user: &Principal,
        subject: &SubjectRef,
        create: Option<&NewSubjectFacts>,
    ) -> impl Future<Output = Result<Lookup, ApiError>> + Send;
}

/// [`Identity`] backed by intake's SubjectService.
#[derive(Clone)]
pub struct IntakeIdentity {
    client: IntakeClient,
}

impl IntakeIdentity {
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

fn parse_uuid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(s).map_err(|_| ApiError::internal("intake returned a malformed id"))
}

/// The lookup reference intake puts on NOT_FOUND for an unknown BSN.
fn lookup_ref_of(status: &tonic::Status) -> Option<Uuid> {
    zvv_platform::error::error_info_entry(status, "lookup_ref")
        .and_then(|r| Uuid::try_parse(&r).ok())
}

impl Identity for IntakeIdentity {
    async fn families(&self, user: &Principal, subject: Uuid) -> Result<Vec<Family>, ApiError> {
        let mut client = self.client.clone();
        let family = client
            .list_family(on_behalf_of(
                ListFamilyRequest {
                    subject_id: subject.to_string(),
                },
                user,
            ))
            .await
            .map_err(|s| unavailable(&s))?
            .into_inner();
        let mut families = Vec::new();
        for parent in family.parent_subject_ids {
            let parent = parse_uuid(&parent)?;
            let mut children = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_relations(on_behalf_of(
                        ListRelationsRequest {
                            subject_id: parent.to_string(),
                            page_size: 100,
                            page_token,
                        },
                        user,
                    ))
                    .await
                    .map_err(|s| unavailable(&s))?
                    .into_inner();
                for r in page.relations {
                    if parse_uuid(&r.parent_subject_id)? == parent {
                        children.push(parse_uuid(&r.child_subject_id)?);
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            children.sort();
            children.dedup();
            families.push(Family { parent, children });
        }
        Ok(families)
    }

    async fn lookup(
        &self,
        user: &Principal,
        subject: &SubjectRef,
        create: Option<&NewSubjectFacts>,
    ) -> Result<Lookup, ApiError> {
        let mut client = self.client.clone();
        let id = match subject {
            SubjectRef::Id(id) => *id,
            SubjectRef::Bsn(bsn) => {
                let facts = create.cloned().unwrap_or_default();
                let resolved = client
                    .resolve_subject(on_behalf_of(
                        ResolveSubjectRequest {
                            bsn: bsn.expose(),
                            create_if_missing: create.is_some(),
                            municipality_code: facts.municipality_code.unwrap_or_default(),
                            birth_date: facts
                                .birth_date
                                .map(|d| d.format("%Y-%m-%d").to_string())
                                .unwrap_or_default(),
                        },
                        user,
                    ))
                    .await;
                match resolved {
                    Ok(r) => Uuid::try_parse(&r.into_inner().subject_id).map_err(|_| {
                        ApiError::internal("intake returned a malformed subject_id")
                    })?,
                    Err(s) if s.code() == Code::NotFound => {
                        return Ok(Lookup::Unknown {
                            lookup_ref: lookup_ref_of(&s),
                        });
                    }
                    Err(s) => return Err(unavailable(&s)),
                }
            }
        };
        match client
            .get_subject(on_behalf_of(
                GetSubjectRequest {
                    subject_id: id.to_string(),
                },
                user,
            ))
            .await
        {
            Ok(r) => {
                let s = r.into_inner().subject.unwrap_or_default();
                Ok(Lookup::Found(SubjectFacts {
                    subject_id: id,
                    birth_date: date(&s.birth_date),
                    date_of_death: date(&s.date_of_death),
                    municipality_code: non_empty(s.municipality_code),
                    neighbourhood_code: non_empty(s.neighbourhood_code),
                }))
            }
            Err(s) if s.code() == Code::NotFound => Ok(Lookup::Unknown { lookup_ref: None }),
            Err(s) => Err(unavailable(&s)),
        }
    }
}
