//! Suite SERVICE tokens are narrow: a token names the one service it is for, and every other
//! service refuses it as unauthenticated (and audits the refusal).

use tonic::Code;
use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role, TokenRequest};
use zvv_proto::{
    intake::v1::ResolveSubjectRequest,
    signalling::v1::{ListMatchesRequest, RegisterSignalRequest},
};

const BSN: &str = "123456782";

fn resolve() -> ResolveSubjectRequest {
    ResolveSubjectRequest {
        bsn: BSN.into(),
        create_if_missing: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_service_token_for_one_service_is_refused_by_another() {
    let app = Harness::start().await.expect("suite");
    let to_intake = app
        .keys
        .service_token("zvv-signalling", zvv_intake::SCHEMA.name());
    let to_signalling = app
        .keys
        .service_token("zvv-signalling", zvv_signalling::SCHEMA.name());
    // a SERVICE token with only the suite audience, as every token had before
    let broad = app
        .keys
        .signer()
        .mint(&TokenRequest {
            sub: "zvv-signalling".into(),
            org: "zvv-signalling".into(),
            org_type: OrgType::Suite,
            roles: vec![Role::Service],
            municipalities: Vec::new(),
            ttl: chrono::Duration::hours(1),
            for_service: None,
        })
        .expect("token");

    // the token for intake works with intake
    let resolved = app
        .intake(&to_intake)
        .expect("client")
        .resolve_subject(resolve())
        .await
        .expect("intake takes its own SERVICE token");
    assert!(!resolved.into_inner().subject_id.is_empty());

    // ... and nowhere else
    let refused = app
        .signalling(&to_intake)
        .expect("client")
        .list_matches(ListMatchesRequest::default())
        .await
        .expect_err("signalling refuses a token for intake");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("audience"),
        "{}",
        refused.message()
    );
    let refused = app
        .intake(&to_signalling)
        .expect("client")
        .resolve_subject(resolve())
        .await
        .expect_err("intake refuses a token for signalling");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // a SERVICE token that names no service is refused by every service
    let refused = app
        .intake(&broad)
        .expect("client")
        .resolve_subject(resolve())
        .await
        .expect_err("intake refuses a broad SERVICE token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = app
        .signalling(&broad)
        .expect("client")
        .register_signal(RegisterSignalRequest::default())
        .await
        .expect_err("signalling refuses a broad SERVICE token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // professionals' tokens carry the suite audience and work with every service
    let professional = app.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    app.signalling(&professional)
        .expect("client")
        .list_matches(ListMatchesRequest::default())
        .await
        .expect("a professional lists matches");

    // the refusals are audited as unauthenticated, on the service that refused
    let refusals = |schema: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {schema}.audit_log WHERE result = 'UNAUTHENTICATED'"
            )))
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while (refusals("intake").await, refusals("signalling").await) != (2, 2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusals audited: intake {}, signalling {}",
            refusals("intake").await,
            refusals("signalling").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
