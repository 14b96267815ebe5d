use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::intake::v1::{RegisterSubjectRequest, ResolveSubjectRequest};

/// A professional registers a child; a suite service resolves the same BSN to the same
/// pseudonymous id with its SERVICE token; the outgoing call carries the caller's trace, and
/// intake's audit record names it.
#[tokio::test]
async fn a_service_resolves_a_registered_child_within_the_callers_trace() {
    zvv_e2e::init_telemetry();
    let suite = Harness::start().await.expect("suite starts");
    let professional = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let mut intake = suite.intake(&professional).expect("client");
    let subject = intake
        .register_subject(RegisterSubjectRequest {
            request_id: "e2e-register-1".into(),
            bsn: "123456782".into(),
            given_name: "Noor".into(),
            family_name: "de Vries".into(),
            birth_date: "2016-05-04".into(),
            municipality_code: "GM0363".into(),
            neighbourhood_code: "WK036305".into(),
        })
        .await
        .expect("register")
        .into_inner()
        .subject
        .expect("subject");

    let service = suite
        .keys
        .service_token("zvv-signalling", zvv_intake::SCHEMA.name());
    let mut as_service = suite.intake(&service).expect("client");
    let span = tracing::info_span!("signalling.register_signal");
    let trace_id = span.context().span().span_context().trace_id().to_string();
    assert_ne!(
        trace_id, "00000000000000000000000000000000",
        "spans get real ids"
    );
    let resolved = async {
        as_service
            .resolve_subject(ResolveSubjectRequest {
                bsn: "123456782".into(),
                create_if_missing: false,
                ..Default::default()
            })
            .await
    }
    .instrument(span)
    .await
    .expect("resolve")
    .into_inner();
    assert_eq!(resolved.subject_id, subject.subject_id);
    assert_eq!(resolved.birth_date, "2016-05-04");
    assert!(!resolved.created);

    let (audited_trace, org): (String, String) = sqlx::query_as(
        "SELECT trace_id, actor_org FROM intake.audit_log \
         WHERE action = 'zvv.intake.v1.SubjectService/ResolveSubject' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&suite.pool)
    .await
    .expect("audit row");
    assert_eq!(
        audited_trace, trace_id,
        "intake continued the caller's trace"
    );
    assert_eq!(org, "zvv-signalling");
    suite.stop().await;
}
