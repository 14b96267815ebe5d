//! [`Intake`] over gRPC: one `GetSubjectContext` call per request, with this service's own
//! SERVICE token, on behalf of the end user (intake's audit names both).

use chrono::NaiveDate;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;
use zvv_platform::{
    auth::Principal,
    client::{Outgoing, on_behalf_of},
    error::{ApiError, error_info_entry},
};
use zvv_proto::intake::v1::{
    GetSubjectContextRequest, get_subject_context_request,
    subject_service_client::SubjectServiceClient,
};

use super::{Family, Intake, Lookup, NewSubjectFacts, SubjectContext, SubjectRef};

pub type IntakeClient = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;

/// [`Intake`] backed by intake's SubjectService.
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
