//! The thin gRPC adapter: takes the call context, turns the request into domain input, calls
//! the logic and maps the result. No SQL and no business rule here.

use tonic::{Request, Response, Status};
use zvv_platform::adapter::{call_context, date_text, timestamp};
use zvv_proto::intake::v1::{self as pb, subject_service_server::SubjectService};

use crate::{
    domain::{Relation, RelationKind, RelationSource, Subject, UnlinkReason},
    service::{ContextSubject, CreateFacts, RegisterInput, SubjectLogic, UpdateValues},
    store::{ParentFamily, SubjectStore},
};

pub struct SubjectApi<S> {
    logic: SubjectLogic<S>,
}

impl<S> SubjectApi<S> {
    pub fn new(logic: SubjectLogic<S>) -> Self {
        Self { logic }
    }
}

fn subject_pb(s: Subject) -> pb::Subject {
    pb::Subject {
        subject_id: s.id.to_string(),
        bsn_masked: s.bsn_masked,
        given_name: s.given_name.unwrap_or_default(),
        family_name: s.family_name.unwrap_or_default(),
        birth_date: date_text(s.birth_date),
        municipality_code: s.municipality_code.unwrap_or_default(),
        neighbourhood_code: s.neighbourhood_code.unwrap_or_default(),
        date_of_death: date_text(s.date_of_death),
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
    }
}

fn kind_pb(k: RelationKind) -> pb::RelationKind {
    match k {
        RelationKind::Parent => pb::RelationKind::Parent,
        RelationKind::Guardian => pb::RelationKind::Guardian,
    }
}

fn source_pb(s: Option<RelationSource>) -> pb::RelationSource {
    match s {
        Some(RelationSource::Brp) => pb::RelationSource::Brp,
        Some(RelationSource::CourtOrder) => pb::RelationSource::CourtOrder,
        Some(RelationSource::Declaration) => pb::RelationSource::Declaration,
        None => pb::RelationSource::Unspecified,
    }
}

fn family_pb(f: ParentFamily) -> pb::Family {
    pb::Family {
        parent_subject_id: f.parent.to_string(),
        kind: kind_pb(f.kind) as i32,
        child_subject_ids: f.children.iter().map(ToString::to_string).collect(),
    }
}

fn relation_pb(r: Relation) -> pb::Relation {
    pb::Relation {
        parent_subject_id: r.parent.to_string(),
        child_subject_id: r.child.to_string(),
        kind: kind_pb(r.kind) as i32,
        create_time: Some(timestamp(r.created_at)),
        source: source_pb(r.source) as i32,
    }
}

#[tonic::async_trait]
impl<S: SubjectStore> SubjectService for SubjectApi<S> {
    async fn register_subject(
        &self,
        request: Request<pb::RegisterSubjectRequest>,
    ) -> Result<Response<pb::RegisterSubjectResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let input = RegisterInput {
            request_id: r.request_id,
            bsn: r.bsn,
            given_name: r.given_name,
            family_name: r.family_name,
            birth_date: r.birth_date,
            municipality_code: r.municipality_code,
            neighbourhood_code: r.neighbourhood_code,
        };
        let subject = self
            .logic
            .register(&ctx, input)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RegisterSubjectResponse {
            subject: Some(subject_pb(subject)),
        }))
    }

    async fn resolve_subject(
        &self,
        request: Request<pb::ResolveSubjectRequest>,
    ) -> Result<Response<pb::ResolveSubjectResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let facts = CreateFacts {
            municipality_code: r.municipality_code,
            birth_date: r.birth_date,
        };
        let resolved = self
            .logic
            .resolve(&ctx, &r.bsn, r.create_if_missing, &facts)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ResolveSubjectResponse {
            subject_id: resolved.subject.id.to_string(),
            birth_date: date_text(resolved.subject.birth_date),
            created: resolved.created,
            date_of_death: date_text(resolved.subject.date_of_death),
            lookup_ref: resolved.lookup_ref.to_string(),
        }))
    }

    async fn get_subject_context(
        &self,
        request: Request<pb::GetSubjectContextRequest>,
    ) -> Result<Response<pb::GetSubjectContextResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let subject = match r.subject {
            Some(pb::get_subject_context_request::Subject::Bsn(b)) => ContextSubject::Bsn(b),
            Some(pb::get_subject_context_request::Subject::SubjectId(id)) => ContextSubject::Id(id),
            None => ContextSubject::Missing,
        };
        let facts = CreateFacts {
            municipality_code: r.municipality_code,
            birth_date: r.birth_date,
        };
        let (resolved, families) = self
            .logic
            .context(&ctx, subject, r.create_if_missing, &facts)
            .await
            .map_err(|e| ctx.fail(e))?;
        let s = resolved.subject;
        Ok(Response::new(pb::GetSubjectContextResponse {
            subject_id: s.id.to_string(),
            lookup_ref: if resolved.lookup_ref.is_nil() {
                String::new()
            } else {
                resolved.lookup_ref.to_string()
            },
            created: resolved.created,
            birth_date: date_text(s.birth_date),
            date_of_death: date_text(s.date_of_death),
            municipality_code: s.municipality_code.unwrap_or_default(),
            neighbourhood_code: s.neighbourhood_code.unwrap_or_default(),
            families: families.into_iter().map(family_pb).collect(),
        }))
    }

    async fn get_subject(
        &self,
        request: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::GetSubjectResponse>, Status> {
        let ctx = call_context(&request)?;
        let subject = self
            .logic
            .get(&ctx, &request.into_inner().subject_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::GetSubjectResponse {
            subject: Some(subject_pb(subject)),
        }))
    }

    async fn update_subject(
        &self,
        request: Request<pb::UpdateSubjectRequest>,
    ) -> Result<Response<pb::UpdateSubjectResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let s = r.subject.unwrap_or_default();
        let values = UpdateValues {
            given_name: s.given_name,
            family_name: s.family_name,
            municipality_code: s.municipality_code,
            neighbourhood_code: s.neighbourhood_code,
            date_of_death: s.date_of_death,
            birth_date: s.birth_date,
        };
        let subject = self
            .logic
            .update(&ctx, &r.subject_id, &paths, &values, &r.request_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::UpdateSubjectResponse {
            subject: Some(subject_pb(subject)),
        }))
    }

    async fn link_relation(
        &self,
        request: Request<pb::LinkRelationRequest>,
    ) -> Result<Response<pb::LinkRelationResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let kind = match pb::RelationKind::try_from(r.kind) {
            Ok(pb::RelationKind::Parent) => Some(RelationKind::Parent),
            Ok(pb::RelationKind::Guardian) => Some(RelationKind::Guardian),
            _ => None,
        };
        let source = match pb::RelationSource::try_from(r.source) {
            Ok(pb::RelationSource::Brp) => Some(RelationSource::Brp),
            Ok(pb::RelationSource::CourtOrder) => Some(RelationSource::CourtOrder),
            Ok(pb::RelationSource::Declaration) => Some(RelationSource::Declaration),
            _ => None,
        };
        let relation = self
            .logic
            .link(
                &ctx,
                &r.request_id,
                &r.parent_subject_id,
                &r.child_subject_id,
                kind,
                source,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::LinkRelationResponse {
            relation: Some(relation_pb(relation)),
        }))
    }

    async fn unlink_relation(
        &self,
        request: Request<pb::UnlinkRelationRequest>,
    ) -> Result<Response<pb::UnlinkRelationResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let reason = match pb::UnlinkReason::try_from(r.reason) {
            Ok(pb::UnlinkReason::RecordedInError) => Some(UnlinkReason::RecordedInError),
            Ok(pb::UnlinkReason::WrongPerson) => Some(UnlinkReason::WrongPerson),
            Ok(pb::UnlinkReason::SourceCorrected) => Some(UnlinkReason::SourceCorrected),
            Ok(pb::UnlinkReason::CustodyEnded) => Some(UnlinkReason::CustodyEnded),
            _ => None,
        };
        let relation = self
            .logic
            .unlink(
                &ctx,
                &r.request_id,
                &r.parent_subject_id,
                &r.child_subject_id,
                reason,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::UnlinkRelationResponse {
            relation: Some(relation_pb(relation)),
        }))
    }

    async fn list_relations(
        &self,
        request: Request<pb::ListRelationsRequest>,
    ) -> Result<Response<pb::ListRelationsResponse>, Status> {
        let ctx = call_context(&request)?;
        let r = request.into_inner();
        let page = self
            .logic
            .list_relations(&ctx, &r.subject_id, r.page_size, &r.page_token)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListRelationsResponse {
            relations: page.relations.into_iter().map(relation_pb).collect(),
            next_page_token: page
                .next
                .map(|(p, c)| zvv_platform::paging::id_token(&[p, c]))
                .unwrap_or_default(),
        }))
    }

    async fn list_family(
        &self,
        request: Request<pb::ListFamilyRequest>,
    ) -> Result<Response<pb::ListFamilyResponse>, Status> {
        let ctx = call_context(&request)?;
        let family = self
            .logic
            .family(&ctx, &request.into_inner().subject_id)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListFamilyResponse {
            sibling_subject_ids: family.siblings.iter().map(ToString::to_string).collect(),
            parent_subject_ids: family.parents.iter().map(ToString::to_string).collect(),
        }))
    }
}
