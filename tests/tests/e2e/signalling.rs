use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::{
    intake::v1::RegisterSubjectRequest,
    signalling::v1::{Contact, MatchKind, RegisterSignalRequest, register_signal_request::Subject},
};

fn signal(request_id: &str, bsn: &str, name: &str) -> RegisterSignalRequest {
    RegisterSignalRequest {
        request_id: request_id.into(),
        subject: Some(Subject::Bsn(bsn.into())),
        contact: Some(Contact {
            name: name.into(),
            phone: "+31 20 555 0101".into(),
            email: "contact@example.nl".into(),
        }),
        duration_months: 0,
    }
}

/// A school and youth health care signal the same child by BSN: signalling resolves it through
/// intake (never storing the BSN), the second signal makes a client match that shows both
/// organisations' contacts, and intake's audit names signalling and carries the same trace.
#[tokio::test]
async fn two_organisations_signalling_one_child_are_put_in_touch() {
    let suite = Harness::start().await.expect("suite starts");
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    suite
        .intake(&muni)
        .expect("client")
        .register_subject(RegisterSubjectRequest {
            request_id: "e2e-child".into(),
            bsn: "123456782".into(),
            given_name: "Noor".into(),
            family_name: "de Vries".into(),
            birth_date: "2016-05-04".into(),
            municipality_code: "GM0363".into(),
            neighbourhood_code: "WK036305".into(),
        })
        .await
        .expect("child registered");

    let school = suite.token("school-42", OrgType::School, &[Role::Professional]);
    let first = suite
        .signalling(&school)
        .expect("client")
        .register_signal(signal("s1", "123456782", "Mw. de Boer"))
        .await
        .expect("school signal")
        .into_inner();
    assert!(first.matches.is_empty(), "one organisation is no match");

    let jgz = suite.token("ggd-jgz", OrgType::YouthHealth, &[Role::Professional]);
    let second = suite
        .signalling(&jgz)
        .expect("client")
        .register_signal(signal("s2", "123456782", "Dhr. Visser"))
        .await
        .expect("jgz signal")
        .into_inner();
    assert_eq!(second.matches.len(), 1);
    let m = &second.matches[0];
    assert_eq!(m.kind, MatchKind::Client as i32);
    let orgs: Vec<&str> = m
        .participants
        .iter()
        .map(|p| p.organisation.as_str())
        .collect();
    assert_eq!(orgs, ["school-42", "ggd-jgz"]);
    assert_eq!(
        m.participants[0].contact.as_ref().map(|c| c.name.as_str()),
        Some("Mw. de Boer")
    );

    let stored: Vec<String> = sqlx::query_scalar("SELECT s::text FROM signalling.signals s")
        .fetch_all(&suite.pool)
        .await
        .expect("signals");
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|row| !row.contains("123456782")),
        "no BSN in signalling"
    );

    let (signalling_trace,): (String,) = sqlx::query_as(
        "SELECT trace_id FROM signalling.audit_log \
         WHERE action = 'zvv.signalling.v1.SignalService/RegisterSignal' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&suite.pool)
    .await
    .expect("signalling audit");
    let intake_calls: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor_org FROM intake.audit_log WHERE trace_id = $1 ORDER BY seq",
    )
    .bind(&signalling_trace)
    .fetch_all(&suite.pool)
    .await
    .expect("intake audit");
    assert!(!signalling_trace.is_empty());
    assert_eq!(
        intake_calls,
        [(
            "zvv.intake.v1.SubjectService/GetSubjectContext".to_owned(),
            "zvv-signalling".to_owned()
        )],
        "one intake call per signal, in signalling's trace"
    );
    suite.stop().await;
}

/// After a match, one participant assigns the coordinator, the match is marked coordinated, and
/// a signal records the information duty.
#[tokio::test]
async fn a_match_gets_a_coordinator_and_signals_record_the_information_duty() {
    use zvv_proto::signalling::v1::{
        AssignCoordinatorRequest, MarkCoordinatedRequest, RecordInformationDutyRequest,
    };
    let suite = Harness::start().await.expect("suite starts");
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    suite
        .intake(&muni)
        .expect("client")
        .register_subject(RegisterSubjectRequest {
            request_id: "e2e-child-2".into(),
            bsn: "111222333".into(),
            given_name: "Sem".into(),
            family_name: "Bakker".into(),
            birth_date: "2013-01-10".into(),
            municipality_code: "GM0363".into(),
            neighbourhood_code: "WK036305".into(),
        })
        .await
        .expect("child registered");
    let school = suite.token("school-7", OrgType::School, &[Role::Professional]);
    let team = suite.token(
        "team-west",
        OrgType::NeighbourhoodTeam,
        &[Role::Coordinator],
    );
    let mut as_school = suite.signalling(&school).expect("client");
    let mut as_team = suite.signalling(&team).expect("client");
    let first = as_school
        .register_signal(signal("c1", "111222333", "Mw. Smit"))
        .await
        .expect("school signal")
        .into_inner()
        .signal
        .expect("signal");
    let m = as_team
        .register_signal(signal("c2", "111222333", "Dhr. Bos"))
        .await
        .expect("team signal")
        .into_inner()
        .matches
        .remove(0);

    // marking coordinated before there is a coordinator is refused
    let status = as_school
        .mark_coordinated(MarkCoordinatedRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            match_id: m.match_id.clone(),
        })
        .await
        .expect_err("no coordinator yet");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    // the coordinator must take part in the match
    let status = as_team
        .assign_coordinator(AssignCoordinatorRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            match_id: m.match_id.clone(),
            organisation: "someone-else".into(),
            contact: Some(Contact {
                name: "X".into(),
                phone: "+31 20 555 0199".into(),
                email: "x@example.nl".into(),
            }),
        })
        .await
        .expect_err("not a participant");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);

    let assigned = as_team
        .assign_coordinator(AssignCoordinatorRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            match_id: m.match_id.clone(),
            organisation: "team-west".into(),
            contact: Some(Contact {
                name: "Dhr. Bos".into(),
                phone: "+31 20 555 0102".into(),
                email: "bos@team-west.nl".into(),
            }),
        })
        .await
        .expect("assign")
        .into_inner()
        .r#match
        .expect("match");
    assert_eq!(
        assigned
            .coordinator
            .as_ref()
            .map(|c| c.organisation.as_str()),
        Some("team-west")
    );
    let done = as_school
        .mark_coordinated(MarkCoordinatedRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            match_id: m.match_id.clone(),
        })
        .await
        .expect("mark")
        .into_inner()
        .r#match
        .expect("match");
    assert!(done.coordinated);

    // another organisation cannot touch the match
    let outsider = suite.token("ggd", OrgType::YouthHealth, &[Role::Professional]);
    let status = suite
        .signalling(&outsider)
        .expect("client")
        .mark_coordinated(MarkCoordinatedRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            match_id: m.match_id.clone(),
        })
        .await
        .expect_err("outsider");
    assert_eq!(status.code(), tonic::Code::NotFound);

    // a 13-year-old: parents and child must both be informed, or a postponement recorded
    let today = zvv_platform::clock::Clock::today(&suite.clock)
        .format("%Y-%m-%d")
        .to_string();
    let parents_only = as_school
        .record_information_duty(RecordInformationDutyRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            signal_id: first.signal_id.clone(),
            parents_informed_on: today.clone(),
            child_informed_on: String::new(),
            postponement_reason: String::new(),
        })
        .await
        .expect("record")
        .into_inner()
        .signal
        .expect("signal");
    assert!(!parents_only.information_duty.expect("duty").met);
    let both = as_school
        .record_information_duty(RecordInformationDutyRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            signal_id: first.signal_id.clone(),
            parents_informed_on: today.clone(),
            child_informed_on: today,
            postponement_reason: String::new(),
        })
        .await
        .expect("record")
        .into_inner()
        .signal
        .expect("signal");
    assert!(both.information_duty.expect("duty").met);
    suite.stop().await;
}

/// Two organisations signalling two children of one parent are put in touch by a FAMILY match;
/// when one of them closes its signal, the match closes.
#[tokio::test]
async fn signals_on_siblings_make_a_family_match() {
    use zvv_proto::{
        intake::v1::{LinkRelationRequest, RelationKind},
        signalling::v1::{CloseReason, CloseSignalRequest, GetMatchRequest, MatchStatus},
    };
    let suite = Harness::start().await.expect("suite starts");
    // relations are recorded by a coordinator of the municipality
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Coordinator]);
    let mut intake = suite.intake(&muni).expect("client");
    let register =
        |request_id: &'static str, bsn: &'static str, name: &'static str, born: &'static str| {
            let mut intake = intake.clone();
            async move {
                intake
                    .register_subject(RegisterSubjectRequest {
                        request_id: request_id.into(),
                        bsn: bsn.into(),
                        given_name: name.into(),
                        family_name: "Jansen".into(),
                        birth_date: born.into(),
                        municipality_code: "GM0363".into(),
                        neighbourhood_code: "WK036305".into(),
                    })
                    .await
                    .expect("registered")
                    .into_inner()
                    .subject
                    .expect("subject")
                    .subject_id
            }
        };
    let parent = register("p", "111222333", "Ouder", "1985-01-01").await;
    let older = register("a", "123456782", "Anna", "2014-02-02").await;
    let younger = register("b", "012345672", "Bram", "2018-03-03").await;
    for (i, child) in [&older, &younger].into_iter().enumerate() {
        intake
            .link_relation(LinkRelationRequest {
                request_id: format!("link-{i}"),
                parent_subject_id: parent.clone(),
                child_subject_id: child.clone(),
                kind: RelationKind::Parent as i32,
                source: zvv_proto::intake::v1::RelationSource::Brp as i32,
            })
            .await
            .expect("linked");
    }

    let by_id = |request_id: &str, subject_id: &str, name: &str| RegisterSignalRequest {
        subject: Some(Subject::SubjectId(subject_id.to_owned())),
        ..signal(request_id, "", name)
    };
    let school = suite.token("school-1", OrgType::School, &[Role::Professional]);
    let care = suite.token("jeugdzorg", OrgType::YouthCare, &[Role::Professional]);
    suite
        .signalling(&school)
        .expect("client")
        .register_signal(by_id("f1", &older, "Mw. Kok"))
        .await
        .expect("school signal on the older child");
    let response = suite
        .signalling(&care)
        .expect("client")
        .register_signal(by_id("f2", &younger, "Dhr. Dekker"))
        .await
        .expect("care signal on the younger child")
        .into_inner();
    assert_eq!(response.matches.len(), 1, "{:?}", response.matches);
    let family = &response.matches[0];
    assert_eq!(family.kind, MatchKind::Family as i32);
    let mut subjects = family.subject_ids.clone();
    subjects.sort();
    let mut expected = vec![older.clone(), younger.clone()];
    expected.sort();
    assert_eq!(subjects, expected);
    assert_eq!(family.participants.len(), 2);

    // the school closes its signal: one organisation is left, the match closes
    let school_signal = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT signal_id FROM signalling.signals WHERE organisation = 'school-1'",
    )
    .fetch_one(&suite.pool)
    .await
    .expect("school signal id");
    suite
        .signalling(&school)
        .expect("client")
        .close_signal(CloseSignalRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            signal_id: school_signal.to_string(),
            reason: CloseReason::RiskGone as i32,
        })
        .await
        .expect("closed");
    let after = suite
        .signalling(&care)
        .expect("client")
        .get_match(GetMatchRequest {
            match_id: family.match_id.clone(),
        })
        .await
        .expect("still visible to the organisation in it")
        .into_inner()
        .r#match
        .expect("match");
    assert_eq!(after.status, MatchStatus::Closed as i32);
    assert_eq!(after.participants.len(), 1);
    suite.stop().await;
}
