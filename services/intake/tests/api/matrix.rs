//! The jurisdiction matrix of SubjectService, generated from its policy table: every RPC called
//! by a caller of the subject's own municipality, of another municipality, with no jurisdiction,
//! of an organisation type and of a role the table does not grant, and by a suite service. A new
//! RPC without its row fails here.

use std::sync::atomic::{AtomicUsize, Ordering};

use tonic::Status;
use zvv_devkit::testkit::matrix::{self, DENIED, NOT_FOUND, OK, Row};
use zvv_intake::policy::SUBJECT_SERVICE;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::intake::v1 as pb;

use crate::helpers::{TestApp, link_request, request_id, valid_bsn};

const OWN: &str = "GM0034";
const OTHER: &str = "GM0758";

/// Columns: own municipality, other municipality, no jurisdiction, wrong org type, wrong role,
/// suite service.
const ROWS: &[Row] = &[
    Row {
        method: "RegisterSubject",
        expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ResolveSubject",
        expect: [DENIED, DENIED, DENIED, DENIED, DENIED, OK],
    },
    Row {
        method: "GetSubjectContext",
        expect: [DENIED, DENIED, DENIED, DENIED, DENIED, OK],
    },
    Row {
        method: "GetSubject",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, OK],
    },
    Row {
        method: "UpdateSubject",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, OK],
    },
    Row {
        method: "LinkRelation",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "UnlinkRelation",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ListRelations",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, OK],
    },
    Row {
        method: "ListFamily",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, OK],
    },
];

struct Fixture {
    app: TestApp,
    /// A child in GM0034 with a parent.
    child: pb::Subject,
    child_bsn: String,
    parent: pb::Subject,
    next_bsn: AtomicUsize,
}

impl Fixture {
    fn almere_coordinator(&self) -> String {
        self.app.keys.token_in(
            "gemeente-almere",
            OrgType::Municipality,
            &[Role::Coordinator],
            &[OWN],
        )
    }

    fn fresh_bsn(&self) -> String {
        valid_bsn(self.next_bsn.fetch_add(1, Ordering::SeqCst))
    }

    /// A new subject in GM0034, registered by its coordinator.
    async fn subject(&self) -> pb::Subject {
        self.app
            .client(&self.almere_coordinator())
            .register_subject(register_in_almere(&self.fresh_bsn()))
            .await
            .expect("register in GM0034")
            .into_inner()
            .subject
            .expect("subject")
    }

    async fn linked_pair(&self) -> (pb::Subject, pb::Subject) {
        let (parent, child) = (self.subject().await, self.subject().await);
        self.app
            .client(&self.almere_coordinator())
            .link_relation(link_request(&parent.subject_id, &child.subject_id))
            .await
            .expect("link in GM0034");
        (parent, child)
    }

    /// Calls `method` with `token`: `Ok(seen)` tells whether the fixture's subject is in the
    /// answer.
    async fn call(&self, method: &str, token: &str) -> Result<bool, Status> {
        let mut client = self.app.client(token);
        let child = self.child.subject_id.clone();
        match method {
            "RegisterSubject" => Ok(client
                .register_subject(register_in_almere(&self.fresh_bsn()))
                .await?
                .into_inner()
                .subject
                .is_some()),
            "ResolveSubject" => Ok(client
                .resolve_subject(pb::ResolveSubjectRequest {
                    bsn: self.child_bsn.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .subject_id
                == child),
            "GetSubjectContext" => Ok(client
                .get_subject_context(pb::GetSubjectContextRequest {
                    subject: Some(pb::get_subject_context_request::Subject::SubjectId(
                        child.clone(),
                    )),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .families
                .iter()
                .any(|f| f.parent_subject_id == self.parent.subject_id)),
            "GetSubject" => Ok(client
                .get_subject(pb::GetSubjectRequest {
                    subject_id: child.clone(),
                })
                .await?
                .into_inner()
                .subject
                .is_some_and(|s| s.subject_id == child)),
            "UpdateSubject" => Ok(client
                .update_subject(pb::UpdateSubjectRequest {
                    subject_id: child.clone(),
                    subject: Some(pb::Subject {
                        given_name: "Noor".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["given_name".into()],
                    }),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .subject
                .is_some_and(|s| s.subject_id == child)),
            "LinkRelation" => {
                let (parent, kid) = (self.subject().await, self.subject().await);
                Ok(client
                    .link_relation(link_request(&parent.subject_id, &kid.subject_id))
                    .await?
                    .into_inner()
                    .relation
                    .is_some())
            }
            "UnlinkRelation" => {
                let (parent, kid) = self.linked_pair().await;
                Ok(client
                    .unlink_relation(pb::UnlinkRelationRequest {
                        request_id: request_id(),
                        parent_subject_id: parent.subject_id,
                        child_subject_id: kid.subject_id,
                        reason: pb::UnlinkReason::RecordedInError as i32,
                    })
                    .await?
                    .into_inner()
                    .relation
                    .is_some())
            }
            "ListRelations" => Ok(client
                .list_relations(pb::ListRelationsRequest {
                    subject_id: child.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .relations
                .iter()
                .any(|r| r.parent_subject_id == self.parent.subject_id)),
            "ListFamily" => Ok(client
                .list_family(pb::ListFamilyRequest {
                    subject_id: child.clone(),
                })
                .await?
                .into_inner()
                .parent_subject_ids
                .contains(&self.parent.subject_id)),
            other => panic!("the matrix has no call for {other}: add one"),
        }
    }
}

fn register_in_almere(bsn: &str) -> pb::RegisterSubjectRequest {
    pb::RegisterSubjectRequest {
        municipality_code: OWN.into(),
        neighbourhood_code: "WK003401".into(),
        ..crate::helpers::register_request(bsn, "Daan")
    }
}

#[test]
fn every_rpc_has_rows_in_the_matrix() {
    matrix::check_coverage(&SUBJECT_SERVICE, ROWS).expect("matrix covers the policy table");
}

#[tokio::test]
async fn jurisdiction_matrix() {
    let app = TestApp::spawn().await;
    let mut fixture = Fixture {
        app,
        child: pb::Subject::default(),
        child_bsn: valid_bsn(1),
        parent: pb::Subject::default(),
        next_bsn: AtomicUsize::new(100),
    };
    let coordinator = fixture.almere_coordinator();
    let mut almere = fixture.app.client(&coordinator);
    fixture.child = almere
        .register_subject(register_in_almere(&fixture.child_bsn))
        .await
        .expect("child")
        .into_inner()
        .subject
        .expect("subject");
    fixture.parent = fixture.subject().await;
    almere
        .link_relation(link_request(
            &fixture.parent.subject_id,
            &fixture.child.subject_id,
        ))
        .await
        .expect("parent linked");

    let setup = matrix::Setup {
        keys: &fixture.app.keys,
        service: zvv_intake::SCHEMA.name(),
        org: "gemeente-test",
        own: OWN,
        other: OTHER,
    };
    matrix::run(
        setup,
        &[&SUBJECT_SERVICE],
        ROWS,
        async |method, _, token| fixture.call(method, token).await,
    )
    .await;
}
