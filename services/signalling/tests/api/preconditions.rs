//! What intake must know before a signal can be registered: the subject, its birth date, and an
//! age under 23 on the registration date.

use tonic::Code;
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{SCHOOL, TestApp, YOUTH_HEALTH, assert_code, by_bsn, by_subject, valid_bsn};

/// Asserts FAILED_PRECONDITION whose message points at intake.
#[track_caller]
fn assert_needs_intake(status: &tonic::Status, case: &str) {
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{case}: {status:?}"
    );
    assert!(
        status.message().to_lowercase().contains("intake"),
        "{case}: the message says the subject must be registered with intake: {:?}",
        status.message()
    );
}

async fn count_signals(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM signalling.signals").await
}

#[tokio::test]
async fn an_unknown_bsn_or_subject_id_is_failed_precondition_naming_intake() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(3);
    let status = assert_code(
        app.client(SCHOOL)
            .register_signal(by_bsn(&bsn, SCHOOL))
            .await,
        Code::FailedPrecondition,
        "unknown BSN",
    );
    assert_needs_intake(&status, "unknown BSN");
    assert!(!status.message().contains(&bsn), "the BSN is not echoed");

    let unknown_id = uuid::Uuid::now_v7().to_string();
    let status = assert_code(
        app.client(SCHOOL)
            .register_signal(by_subject(&unknown_id, SCHOOL))
            .await,
        Code::FailedPrecondition,
        "unknown subject_id",
    );
    assert_needs_intake(&status, "unknown subject_id");
    assert_eq!(count_signals(&app).await, 0);

    // signalling never creates subjects in intake
    assert_eq!(app.count("SELECT count(*) FROM intake.subjects").await, 0);
}

#[tokio::test]
async fn a_subject_without_a_birth_date_is_failed_precondition() {
    let app = TestApp::spawn().await;
    let bsn = valid_bsn(4);
    let subject = app.subject_without_birth_date(&bsn).await;

    let status = assert_code(
        app.client(SCHOOL)
            .register_signal(by_subject(&subject, SCHOOL))
            .await,
        Code::FailedPrecondition,
        "no birth date, by subject_id",
    );
    assert_needs_intake(&status, "no birth date, by subject_id");
    let status = assert_code(
        app.client(SCHOOL)
            .register_signal(by_bsn(&bsn, SCHOOL))
            .await,
        Code::FailedPrecondition,
        "no birth date, by BSN",
    );
    assert_needs_intake(&status, "no birth date, by BSN");
    assert_eq!(count_signals(&app).await, 0);
}

#[tokio::test]
async fn the_subject_must_be_under_23_on_the_registration_date() {
    let app = TestApp::spawn().await;
    // the clock stands at 2026-06-15: 23 today, and 22 until tomorrow
    let twenty_three = app.child_born(&valid_bsn(5), "2003-06-15").await;
    let twenty_two = app.child_born(&valid_bsn(6), "2003-06-16").await;
    let older = app.child_born(&valid_bsn(7), "1990-01-01").await;

    for (subject, case) in [(&twenty_three, "23rd birthday today"), (&older, "36")] {
        assert_code(
            app.client(SCHOOL)
                .register_signal(by_subject(subject, SCHOOL))
                .await,
            Code::FailedPrecondition,
            case,
        );
    }
    assert_eq!(count_signals(&app).await, 0);

    let ok = app.signal(SCHOOL, &twenty_two).await;
    assert_eq!(
        ok.signal.expect("signal").status,
        pb::SignalStatus::Active as i32
    );
    assert_eq!(count_signals(&app).await, 1);
}

/// A retry of a registration gets its first answer even after the child turned 23 in between;
/// a new registration is refused.
#[tokio::test]
async fn a_retry_after_the_23rd_birthday_gets_its_first_answer() {
    let app = TestApp::spawn().await;
    // 22 until tomorrow (the clock stands at 2026-06-15)
    let subject = app.child_born(&valid_bsn(8), "2003-06-16").await;
    let request = by_subject(&subject, SCHOOL);
    let first = app
        .client(SCHOOL)
        .register_signal(request.clone())
        .await
        .expect("registered at 22")
        .into_inner()
        .signal
        .expect("signal");

    app.clock.advance(chrono::Duration::days(2));
    let replayed = app
        .client(SCHOOL)
        .register_signal(request)
        .await
        .expect("the retry is answered")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(replayed.signal_id, first.signal_id);
    assert_eq!(count_signals(&app).await, 1);

    assert_code(
        app.client(YOUTH_HEALTH)
            .register_signal(by_subject(&subject, YOUTH_HEALTH))
            .await,
        Code::FailedPrecondition,
        "a new signal at 23",
    );
}
