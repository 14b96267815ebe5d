//! Health (`grpc.health.v1`) and reflection (v1 and v1alpha) answer without a token.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::TestApp;

const SERVICE: &str = "zvv.intake.v1.SubjectService";

#[tokio::test]
async fn health_reports_serving_overall_and_per_service() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.raw_channel());
    for service in ["", SERVICE] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?}: {s:?}"))
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = health
        .check(HealthCheckRequest {
            service: "zvv.nope.v1.Nothing".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(status.code(), tonic::Code::NotFound);

    // health calls are not audited: they touch no personal data
    assert!(app.audit_rows().await.is_empty());
}

#[tokio::test]
async fn health_goes_not_serving_on_shutdown() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.raw_channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: SERVICE.to_owned(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("stream")
        .expect("first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(app.stop());
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("status change within 10 s");
    // the server reports NOT_SERVING before it stops taking calls
    let msg = next.expect("stream").expect("a status change");
    assert_eq!(msg.status(), ServingStatus::NotServing);
    // an open stream keeps the server draining: let go of it
    drop(watch);
    drop(health);
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_service() {
    let app = TestApp::spawn().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.raw_channel());
    let requests = vec![
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    SERVICE.to_owned(),
                ),
            ),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection v1")
        .into_inner();

    let listed = responses.message().await.expect("stream").expect("list");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed.message_response
    else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == SERVICE), "{names:?}");
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("zvv.signalling.")),
        "only what this server serves is advertised: {names:?}"
    );

    let described = responses.message().await.expect("stream").expect("file");
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        described.message_response
    else {
        panic!("expected a file descriptor, got {described:?}");
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| <prost_types::FileDescriptorProto as prost::Message>::decode(&bytes[..]))
        .collect::<Result<Vec<_>, _>>()
        .expect("file descriptors");
    assert!(
        file.iter().any(|f| f.package() == "zvv.intake.v1"
            && f.service.iter().any(|s| s.name() == "SubjectService")),
        "the descriptor of the service is served"
    );
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_service() {
    let app = TestApp::spawn().await;
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.raw_channel());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let listed = responses.message().await.expect("stream").expect("list");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed.message_response
    else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == SERVICE), "{names:?}");
}
