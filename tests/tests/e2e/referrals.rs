use chrono::Duration;
use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::signalling::v1::{
    DecideReferralRequest, ListReferralsRequest, ReferralDecision, ReferralLevel, ReferralStatus,
    SubmitReferralRequest, referral_service_client::ReferralServiceClient,
    submit_referral_request::Subject,
};

type Client = ReferralServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        zvv_platform::client::Outgoing,
    >,
>;

fn client(suite: &Harness, token: &str) -> Client {
    let ch = zvv_platform::client::channel(
        &suite.signalling_url,
        zvv_platform::client::TokenSource::Static(secrecy::SecretString::from(token.to_owned())),
    )
    .expect("channel");
    ReferralServiceClient::new(ch)
}

fn referral(
    request_id: &str,
    bsn: &str,
    level: ReferralLevel,
    observed_on: &str,
) -> SubmitReferralRequest {
    SubmitReferralRequest {
        request_id: request_id.into(),
        subject: Some(Subject::Bsn(bsn.into())),
        source_instrument: "ProKid 12-".into(),
        instrument_version: "2.1".into(),
        level: level as i32,
        observed_on: observed_on.into(),
        municipality_code: "GM0363".into(),
        birth_date: "2019-04-05".into(),
    }
}

/// The police refer a child intake has never seen: the child is registered (no referral is
/// lost), the colour is kept as provenance, a triage officer sees it, it turns overdue after
/// five working days undecided (with an event), and only a human decision with a rationale
/// closes it.
#[tokio::test]
async fn a_police_referral_goes_through_human_triage() {
    let suite = Harness::start().await.expect("suite starts");
    let police = suite.token("politie-amsterdam", OrgType::Police, &[Role::Professional]);
    let officer = suite.keys.token_in(
        "zvh-amsterdam",
        OrgType::Municipality,
        &[Role::TriageOfficer],
        &["GM0363"],
    );
    let today = zvv_platform::clock::Clock::today(&suite.clock)
        .format("%Y-%m-%d")
        .to_string();

    let submitted = client(&suite, &police)
        .submit_referral(referral("r1", "123456782", ReferralLevel::Orange, &today))
        .await
        .expect("submitted")
        .into_inner()
        .referral
        .expect("referral");
    assert_eq!(submitted.level, ReferralLevel::Orange as i32);
    assert_eq!(submitted.status, ReferralStatus::AwaitingTriage as i32);
    assert!(
        !submitted.decide_by.is_empty(),
        "orange must be decided by a deadline"
    );
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.subjects")
        .fetch_one(&suite.pool)
        .await
        .expect("count");
    assert_eq!(created, 1, "the unknown child was registered in intake");

    // a white referral has no deadline
    let white = client(&suite, &police)
        .submit_referral(referral("r2", "111222333", ReferralLevel::White, &today))
        .await
        .expect("submitted")
        .into_inner()
        .referral
        .expect("referral");
    assert!(white.decide_by.is_empty());

    // the police cannot triage, a triage officer cannot submit
    let status = client(&suite, &police)
        .list_referrals(ListReferralsRequest::default())
        .await
        .expect_err("police may not list");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // eight days later nothing was decided: the orange one is overdue, once reported
    suite.clock.advance(Duration::days(8));
    let overdue = client(&suite, &officer)
        .list_referrals(ListReferralsRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .referrals;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].referral_id, submitted.referral_id);
    assert!(overdue[0].overdue);
    let clock: zvv_platform::clock::SharedClock = std::sync::Arc::new(suite.clock.clone());
    let reported = zvv_signalling::report_overdue_referrals(&suite.pool, clock.clone())
        .await
        .expect("monitor");
    assert_eq!(reported, 1);
    let again = zvv_signalling::report_overdue_referrals(&suite.pool, clock)
        .await
        .expect("monitor");
    assert_eq!(again, 0, "reported once");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM signalling.outbox WHERE event_type = 'signalling.referral.overdue'",
    )
    .fetch_one(&suite.pool)
    .await
    .expect("events");
    assert_eq!(events, 1);

    // a decision needs a rationale
    let status = client(&suite, &officer)
        .decide_referral(DecideReferralRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            referral_id: submitted.referral_id.clone(),
            decision: ReferralDecision::OpenFamilyApproach as i32,
            rationale: "  ".into(),
        })
        .await
        .expect_err("no rationale");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let decided = client(&suite, &officer)
        .decide_referral(DecideReferralRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            referral_id: submitted.referral_id.clone(),
            decision: ReferralDecision::OpenFamilyApproach as i32,
            rationale: "Signalen van school en politie; gezin nog niet in beeld bij het wijkteam."
                .into(),
        })
        .await
        .expect("decided")
        .into_inner()
        .referral
        .expect("referral");
    assert_eq!(decided.status, ReferralStatus::Decided as i32);
    assert_eq!(decided.decided_by, "zvh-amsterdam-user");
    assert!(!decided.overdue);
    let status = client(&suite, &officer)
        .decide_referral(DecideReferralRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            referral_id: submitted.referral_id,
            decision: ReferralDecision::NoAction as i32,
            rationale: "again".into(),
        })
        .await
        .expect_err("decided once");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    suite.stop().await;
}
