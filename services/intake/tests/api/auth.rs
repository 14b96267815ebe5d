//! Authentication (bearer JWTs) and the policy table: UNAUTHENTICATED and PERMISSION_DENIED.

use chrono::Utc;
use tonic::Code;
use zvv_devkit::testkit::TestKeys;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::intake::v1 as pb;

use crate::helpers::{BSN, TestApp, alg_none_token, expect_err, register_request};

fn get(id: &str) -> pb::GetSubjectRequest {
    pb::GetSubjectRequest {
        subject_id: id.to_owned(),
    }
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let subject = app.register(BSN, "Sanne").await;
    let now = Utc::now().timestamp();
    let other_keys = TestKeys::new().expect("other keys");

    let mut tokens: Vec<(&str, String)> = Vec::new();
    let mut expired = app.claims();
    expired.exp = now - 120;
    expired.nbf = now - 3600;
    expired.iat = now - 3600;
    tokens.push(("expired", app.sign(&expired)));
    let mut early = app.claims();
    early.nbf = now + 600;
    tokens.push(("not yet valid", app.sign(&early)));
    tokens.push((
        "signed by another key",
        other_keys.token("gm0363", OrgType::Municipality, &[Role::Professional]),
    ));
    let mut audience = app.claims();
    audience.aud = "another-suite".into();
    tokens.push(("wrong audience", app.sign(&audience)));
    let mut issuer = app.claims();
    issuer.iss = "evil-issuer".into();
    tokens.push(("wrong issuer", app.sign(&issuer)));
    tokens.push(("alg none", alg_none_token(&app.claims())));
    let mut unknown_type = app.claims();
    unknown_type.org_type = "ALIENS".into();
    tokens.push(("unknown org_type", app.sign(&unknown_type)));
    tokens.push(("garbage", "this-is-not-a-jwt".into()));
    tokens.push(("empty", String::new()));
    // a good token with its signature cut off
    let good = app.muni_professional();
    let unsigned = format!("{}.", good.rsplit_once('.').expect("three parts").0);
    tokens.push(("signature removed", unsigned));

    for (case, token) in &tokens {
        let mut client = app.client(token);
        let status = expect_err(client.get_subject(get(&subject.subject_id)).await, case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        let status = expect_err(
            client
                .register_subject(register_request(&crate::helpers::valid_bsn(2), "X"))
                .await,
            case,
        );
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
    }

    // no authorization metadata at all
    let status = expect_err(
        app.bare_client()
            .get_subject(get(&subject.subject_id))
            .await,
        "no token",
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // a token that is not a bearer token
    let mut request = tonic::Request::new(get(&subject.subject_id));
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {good}").parse().expect("header"),
    );
    let status = expect_err(app.bare_client().get_subject(request).await, "basic");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    assert_eq!(
        app.count_subjects().await,
        1,
        "no refused call registered anyone"
    );

    // the same good token works, so the refusals above are about the tokens
    app.client(&good)
        .get_subject(get(&subject.subject_id))
        .await
        .expect("a good token is accepted");
}

#[tokio::test]
async fn callers_outside_the_policy_are_permission_denied() {
    let app = TestApp::spawn().await;
    let subject = app.register(BSN, "Sanne").await;

    let status = expect_err(
        app.client(&app.school_professional())
            .register_subject(register_request(&crate::helpers::valid_bsn(2), "X"))
            .await,
        "school registers",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let status = expect_err(
        app.client(&app.muni_professional())
            .resolve_subject(pb::ResolveSubjectRequest {
                bsn: BSN.into(),
                create_if_missing: false,
                ..Default::default()
            })
            .await,
        "municipality resolves",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let status = expect_err(
        app.client(&app.muni_analyst())
            .get_subject(get(&subject.subject_id))
            .await,
        "analyst reads",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // SERVICE role only counts for suite services; a SERVICE role claimed by a school does not
    let fake_service = app
        .keys
        .token("school-1", OrgType::School, &[Role::Service]);
    let status = expect_err(
        app.client(&fake_service)
            .resolve_subject(pb::ResolveSubjectRequest {
                bsn: BSN.into(),
                create_if_missing: true,
                ..Default::default()
            })
            .await,
        "school with SERVICE role resolves",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // a suite service may resolve and read but not register, update or link
    let mut service = app.client(&app.service());
    let status = expect_err(
        service
            .register_subject(register_request(&crate::helpers::valid_bsn(3), "Y"))
            .await,
        "service registers",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = expect_err(
        service
            .link_relation(crate::helpers::link_request(
                &subject.subject_id,
                &uuid::Uuid::now_v7().to_string(),
            ))
            .await,
        "service links",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // a token without any known role can do nothing
    let mut no_roles = app.claims();
    no_roles.roles = vec!["ASTRONAUT".into()];
    let status = expect_err(
        app.client(&app.sign(&no_roles))
            .get_subject(get(&subject.subject_id))
            .await,
        "unknown role",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    assert_eq!(
        app.count_subjects().await,
        1,
        "no denied call registered anyone"
    );
}
