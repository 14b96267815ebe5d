//! Who may call SignalService: professionals and coordinators of the organisation types that
//! take part in the signalling index; not PRISON, not HOUSING; nobody without a token.

use tonic::Code;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    HOUSING, Org, PRISON, SCHOOL, TestApp, assert_code, by_bsn, by_subject, valid_bsn,
};

#[tokio::test]
async fn prison_and_housing_may_not_signal() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(1);
    let subject = app.child(&bsn).await;
    for org in [PRISON, HOUSING] {
        let mut client = app.client(org);
        assert_code(
            client.register_signal(by_subject(&subject, org)).await,
            Code::PermissionDenied,
            &format!("{} registers", org.name),
        );
        assert_code(
            client.register_signal(by_bsn(&bsn, org)).await,
            Code::PermissionDenied,
            &format!("{} registers by BSN", org.name),
        );
        assert_code(
            client.list_signals(pb::ListSignalsRequest::default()).await,
            Code::PermissionDenied,
            &format!("{} lists", org.name),
        );
        assert_code(
            client.list_matches(pb::ListMatchesRequest::default()).await,
            Code::PermissionDenied,
            &format!("{} lists matches", org.name),
        );
    }
    // other roles of an allowed organisation type are refused too
    for role in [Role::Analyst, Role::Auditor, Role::TriageOfficer] {
        let token = app.keys.token("school-1", OrgType::School, &[role]);
        assert_code(
            app.client_with(&token)
                .register_signal(by_subject(&subject, SCHOOL))
                .await,
            Code::PermissionDenied,
            &format!("school {role}"),
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        0
    );
    // a refused call never reaches intake
    assert_eq!(
        app.count("SELECT count(*) FROM intake.audit_log WHERE actor_org = 'zvv-signalling'")
            .await,
        0
    );
}

#[tokio::test]
async fn every_allowed_organisation_type_may_signal() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let allowed = [
        OrgType::School,
        OrgType::YouthCare,
        OrgType::YouthHealth,
        OrgType::VeiligThuis,
        OrgType::NeighbourhoodTeam,
        OrgType::Police,
        OrgType::Probation,
        OrgType::CareProvider,
        OrgType::Municipality,
        OrgType::GeneralPractice,
        OrgType::DebtCounselling,
    ];
    for (i, org_type) in allowed.into_iter().enumerate() {
        let role = if i % 2 == 0 {
            Role::Professional
        } else {
            Role::Coordinator
        };
        let name: &'static str = Box::leak(format!("org-{i}").into_boxed_str());
        let org = Org {
            name,
            org_type,
            role,
        };
        app.signal(org, &subject).await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        allowed.len() as i64
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.match_signals")
            .await,
        allowed.len() as i64,
        "all in one match"
    );
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let mut bare = app.bare_client();
    assert_code(
        bare.register_signal(by_subject(&subject, SCHOOL)).await,
        Code::Unauthenticated,
        "register without a token",
    );
    assert_code(
        bare.list_signals(pb::ListSignalsRequest::default()).await,
        Code::Unauthenticated,
        "list without a token",
    );
    // a token of keys signalling does not trust
    let foreign = zvv_devkit::testkit::TestKeys::new().expect("keys");
    let token = foreign.token("school-1", OrgType::School, &[Role::Professional]);
    assert_code(
        app.client_with(&token)
            .register_signal(by_subject(&subject, SCHOOL))
            .await,
        Code::Unauthenticated,
        "untrusted key",
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        0
    );
}
