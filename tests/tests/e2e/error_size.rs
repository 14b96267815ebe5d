//! Errors never echo unbounded input: an UpdateSubject with a 100,000-character mask path, or
//! with 10,000 repeated paths, is answered INVALID_ARGUMENT that a default client receives whole
//! (not RESOURCE_EXHAUSTED for metadata over 16 KiB), short, and naming the problem once.

use tonic::Code;
use tonic_types::StatusExt;
use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::{
    intake::v1::{Subject, UpdateSubjectRequest},
    prost_types::FieldMask,
};

fn update(paths: Vec<String>) -> UpdateSubjectRequest {
    UpdateSubjectRequest {
        subject_id: uuid::Uuid::new_v4().to_string(),
        subject: Some(Subject {
            given_name: "Sanne".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask { paths }),
        request_id: String::new(),
    }
}

/// The bytes the status occupies in the trailers: its message and encoded details.
fn size(status: &tonic::Status) -> usize {
    status.message().len() + status.details().len()
}

#[tokio::test]
async fn huge_and_repeated_mask_paths_get_a_short_error() {
    let app = Harness::start().await.expect("suite");
    let token = app.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let mut intake = app.intake(&token).expect("client");

    let long = "x".repeat(100_000);
    let status = intake
        .update_subject(update(vec![long]))
        .await
        .expect_err("an unknown path");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(size(&status) < 2_000, "{} bytes", size(&status));
    assert!(
        status.message().contains("100000 characters"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains(&"x".repeat(41)),
        "{}",
        status.message()
    );

    let status = intake
        .update_subject(update(vec!["given_name".to_owned(); 10_000]))
        .await
        .expect_err("repeated paths");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(size(&status) < 2_000, "{} bytes", size(&status));
    let violations = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].description, "names given_name twice");

    // 1,000 different long unknown paths (within the message size limit): at most ten listed,
    // the rest counted
    let many: Vec<String> = (0..1_000)
        .map(|i| format!("no_such_field_{i}_{}", "y".repeat(100)))
        .collect();
    let status = intake
        .update_subject(update(many))
        .await
        .expect_err("unknown paths");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(size(&status) < 8 * 1024, "{} bytes", size(&status));
    let listed = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.len());
    assert_eq!(listed, Some(11), "ten problems and the count of the rest");
    app.stop().await;
}
