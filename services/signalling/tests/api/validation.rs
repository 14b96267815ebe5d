//! Request validation of RegisterSignal and CloseSignal: INVALID_ARGUMENT naming the field.

use tonic::Code;
use zvv_proto::signalling::v1::{self as pb, register_signal_request::Subject};

use crate::helpers::{
    SCHOOL, TestApp, assert_code, assert_invalid, by_subject, date, expect_err, request_id,
    valid_bsn,
};

#[tokio::test]
async fn duration_is_1_to_24_months_and_defaults_to_12() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let mut client = app.client(SCHOOL);
    for months in [25, -1, 100, i32::MIN] {
        let status = expect_err(
            client
                .register_signal(pb::RegisterSignalRequest {
                    duration_months: months,
                    ..by_subject(&subject, SCHOOL)
                })
                .await,
            "duration",
        );
        assert_invalid(&status, "duration_months", &format!("duration {months}"));
    }
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        0
    );

    // 0 means the default: 12 months from the registration date
    let signal = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    assert_eq!(signal.duration_months, 12);
    assert_eq!(signal.registered_on, "2026-06-15");
    assert_eq!(date(&signal.expires_on), date("2027-06-15"));
    app.close(SCHOOL, &signal.signal_id).await;

    // the bounds themselves are allowed
    for (months, expires) in [(24, "2028-06-15"), (1, "2026-07-15")] {
        let signal = client
            .register_signal(pb::RegisterSignalRequest {
                duration_months: months,
                ..by_subject(&subject, SCHOOL)
            })
            .await
            .unwrap_or_else(|s| panic!("{months} months: {s:?}"))
            .into_inner()
            .signal
            .expect("signal");
        assert_eq!(signal.duration_months, months);
        assert_eq!(signal.expires_on, expires, "{months} months");
        app.close(SCHOOL, &signal.signal_id).await;
    }

    // the dates follow the service's clock
    app.clock.advance(chrono::Duration::days(20));
    let later = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    assert_eq!(later.registered_on, "2026-07-05");
    assert_eq!(later.expires_on, "2027-07-05");
    app.stop().await;
}

#[tokio::test]
async fn contact_fields_are_validated() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let mut client = app.client(SCHOOL);
    let good = by_subject(&subject, SCHOOL).contact.expect("contact");
    let cases: Vec<(pb::Contact, &str, &str)> = vec![
        (
            pb::Contact {
                name: String::new(),
                ..good.clone()
            },
            "contact.name",
            "empty name",
        ),
        (
            pb::Contact {
                name: "a".repeat(201),
                ..good.clone()
            },
            "contact.name",
            "long name",
        ),
        (
            pb::Contact {
                name: "J.\nJansen".into(),
                ..good.clone()
            },
            "contact.name",
            "control character",
        ),
        (
            pb::Contact {
                phone: String::new(),
                ..good.clone()
            },
            "contact.phone",
            "empty phone",
        ),
        (
            pb::Contact {
                phone: "call me".into(),
                ..good.clone()
            },
            "contact.phone",
            "words as phone",
        ),
        (
            pb::Contact {
                email: String::new(),
                ..good.clone()
            },
            "contact.email",
            "empty e-mail",
        ),
        (
            pb::Contact {
                email: "jansen".into(),
                ..good.clone()
            },
            "contact.email",
            "no @",
        ),
        (
            pb::Contact {
                email: "j@school".into(),
                ..good.clone()
            },
            "contact.email",
            "no dot in the domain",
        ),
    ];
    for (contact, field, case) in cases {
        let status = expect_err(
            client
                .register_signal(pb::RegisterSignalRequest {
                    contact: Some(contact),
                    ..by_subject(&subject, SCHOOL)
                })
                .await,
            case,
        );
        assert_invalid(&status, field, case);
    }

    // no contact at all: every contact field is named
    let status = expect_err(
        client
            .register_signal(pb::RegisterSignalRequest {
                contact: None,
                ..by_subject(&subject, SCHOOL)
            })
            .await,
        "no contact",
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = crate::helpers::violation_fields(&status);
    assert!(
        !fields.is_empty() && fields.iter().all(|f| f.starts_with("contact")),
        "{fields:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        0
    );
}

#[tokio::test]
async fn subject_and_request_id_are_validated() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let mut client = app.client(SCHOOL);

    for bad in ["not-a-uuid", "", "123456782"] {
        let status = expect_err(
            client
                .register_signal(pb::RegisterSignalRequest {
                    subject: Some(Subject::SubjectId(bad.into())),
                    ..by_subject(&subject, SCHOOL)
                })
                .await,
            "malformed subject_id",
        );
        assert_invalid(&status, "subject_id", &format!("subject_id {bad:?}"));
    }
    // a BSN failing the elfproef is refused before intake is asked
    let status = expect_err(
        client
            .register_signal(pb::RegisterSignalRequest {
                subject: Some(Subject::Bsn("123456789".into())),
                ..by_subject(&subject, SCHOOL)
            })
            .await,
        "invalid BSN",
    );
    assert_invalid(&status, "bsn", "invalid BSN");
    assert!(!status.message().contains("123456789"), "not echoed");

    let status = expect_err(
        client
            .register_signal(pb::RegisterSignalRequest {
                subject: None,
                ..by_subject(&subject, SCHOOL)
            })
            .await,
        "no subject",
    );
    assert_invalid(&status, "subject", "no subject");

    for bad in [String::new(), "a".repeat(129), "with space".into()] {
        let status = expect_err(
            client
                .register_signal(pb::RegisterSignalRequest {
                    request_id: bad.clone(),
                    ..by_subject(&subject, SCHOOL)
                })
                .await,
            "request_id",
        );
        assert_invalid(&status, "request_id", &format!("request_id {bad:?}"));
    }
    assert_eq!(
        app.count("SELECT count(*) FROM signalling.signals").await,
        0
    );
    // intake was not even asked about the refused BSN
    assert_eq!(
        app.count(
            "SELECT count(*) FROM intake.audit_log \
             WHERE action = 'zvv.intake.v1.SubjectService/GetSubjectContext'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn close_needs_a_reason_and_an_active_signal() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let signal = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    let mut client = app.client(SCHOOL);

    let status = expect_err(
        client
            .close_signal(pb::CloseSignalRequest {
                request_id: request_id(),
                signal_id: signal.signal_id.clone(),
                reason: pb::CloseReason::Unspecified as i32,
            })
            .await,
        "no reason",
    );
    assert_invalid(&status, "reason", "no reason");
    let status = expect_err(
        client
            .close_signal(pb::CloseSignalRequest {
                request_id: request_id(),
                signal_id: "nope".into(),
                reason: pb::CloseReason::RiskGone as i32,
            })
            .await,
        "malformed signal_id",
    );
    assert_invalid(&status, "signal_id", "malformed signal_id");

    let closed = client
        .close_signal(pb::CloseSignalRequest {
            request_id: request_id(),
            signal_id: signal.signal_id.clone(),
            reason: pb::CloseReason::Unjustified as i32,
        })
        .await
        .expect("close")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(closed.status, pb::SignalStatus::Closed as i32);
    assert_eq!(closed.close_reason, pb::CloseReason::Unjustified as i32);

    assert_code(
        client
            .close_signal(pb::CloseSignalRequest {
                request_id: request_id(),
                signal_id: signal.signal_id.clone(),
                reason: pb::CloseReason::RiskGone as i32,
            })
            .await,
        Code::FailedPrecondition,
        "closing a closed signal",
    );
    // the first reason stands
    let read = client
        .get_signal(pb::GetSignalRequest {
            signal_id: signal.signal_id,
        })
        .await
        .expect("get")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(read.close_reason, pb::CloseReason::Unjustified as i32);
}
