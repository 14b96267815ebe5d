//! Server limits: message size, load shedding and the request timeout.
//!
//! A call is held in flight deterministically by taking, from the test, the advisory lock that
//! LinkRelation takes first in its transaction (`zvv.intake.relations`, see store/pg.rs).

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use zvv_platform::server::ServerSettings;
use zvv_proto::intake::v1 as pb;

use crate::helpers::{BSN, TestApp, expect_err, link_request, register_request, valid_bsn};

const RELATIONS_LOCK: &str = "SELECT pg_advisory_lock(hashtext('zvv.intake.relations'))";
const RELATIONS_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('zvv.intake.relations'))";

/// Holds LinkRelation's lock on a connection of its own.
async fn hold_relations_lock(app: &TestApp) -> PgConnection {
    let mut conn = PgConnection::connect_with(&app.db.options)
        .await
        .expect("lock connection");
    sqlx::query(RELATIONS_LOCK)
        .execute(&mut conn)
        .await
        .expect("take lock");
    conn
}

/// Waits until a session of this test's database waits for an advisory lock.
async fn wait_for_lock_waiter(app: &TestApp) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&app.pool)
        .await
        .expect("pg_locks");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the call never reached the lock");
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_server_lives_on() {
    let app = TestApp::spawn().await;
    let mut client = app.client(&app.muni_coordinator());

    let status = expect_err(
        client
            .register_subject(register_request(BSN, &"a".repeat(300 * 1024)))
            .await,
        "300 KiB name",
    );
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert_eq!(app.count_subjects().await, 0);
    let results: Vec<String> =
        sqlx::query_scalar("SELECT result FROM intake.audit_log ORDER BY seq")
            .fetch_all(&app.pool)
            .await
            .expect("audit rows");
    assert_eq!(
        results,
        [crate::helpers::code_name(status.code())],
        "a request that never reached the service is audited too"
    );

    // below the limit the message is decoded and the name rule applies
    let status = expect_err(
        client
            .register_subject(register_request(BSN, &"a".repeat(200 * 1024)))
            .await,
        "200 KiB name",
    );
    crate::helpers::assert_invalid(&status, "given_name", "200 KiB name");

    // the same client and a new one are still served
    client
        .register_subject(register_request(BSN, "Sanne"))
        .await
        .expect("served after the refusal");
    app.client(&app.muni_coordinator())
        .register_subject(register_request(&valid_bsn(1), "Daan"))
        .await
        .expect("new connection served");
    assert_eq!(app.count_subjects().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_limit_are_shed() {
    let app = TestApp::spawn_with(ServerSettings {
        concurrency_limit: 1,
        ..ServerSettings::default()
    })
    .await;
    let parent = app.register(BSN, "Marieke").await;
    let child = app.register(&valid_bsn(1), "Sanne").await;

    let mut lock = hold_relations_lock(&app).await;
    let mut linker = app.client(&app.muni_coordinator());
    let request = link_request(&parent.subject_id, &child.subject_id);
    let in_flight = tokio::spawn(async move { linker.link_relation(request).await });
    wait_for_lock_waiter(&app).await;

    // the one permit is taken: the next call is refused at once, not queued
    let started = std::time::Instant::now();
    let status = expect_err(
        app.client(&app.service())
            .get_subject(pb::GetSubjectRequest {
                subject_id: parent.subject_id.clone(),
            })
            .await,
        "second call",
    );
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shed without waiting"
    );

    // health checks are never shed
    let health = HealthClient::new(app.raw_channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health while busy")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    sqlx::query(RELATIONS_UNLOCK)
        .execute(&mut lock)
        .await
        .expect("release lock");
    let linked = in_flight
        .await
        .expect("task")
        .expect("the held call completes")
        .into_inner();
    assert!(linked.relation.is_some());

    // the permit is back
    app.client(&app.service())
        .get_subject(pb::GetSubjectRequest {
            subject_id: parent.subject_id.clone(),
        })
        .await
        .expect("served again");
    lock.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_request_timeout_is_cancelled_and_changes_nothing() {
    let app = TestApp::spawn_with(ServerSettings {
        request_timeout: Duration::from_secs(1),
        ..ServerSettings::default()
    })
    .await;
    let parent = app.register(BSN, "Marieke").await;
    let child = app.register(&valid_bsn(1), "Sanne").await;

    let mut lock = hold_relations_lock(&app).await;
    let started = std::time::Instant::now();
    let status = expect_err(
        app.client(&app.muni_coordinator())
            .link_relation(link_request(&parent.subject_id, &child.subject_id))
            .await,
        "stuck call",
    );
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // the call itself gets the timeout less the time kept for writing its audit record
    // (zvv_platform::layer::AUDIT_GRACE, at most a quarter of the timeout), so that the
    // answer, audit included, comes by the timeout
    assert!(
        took >= Duration::from_millis(750) && took < Duration::from_secs(5),
        "answered at the 1 s timeout, took {took:?}"
    );
    sqlx::query(RELATIONS_UNLOCK)
        .execute(&mut lock)
        .await
        .expect("release lock");
    lock.close().await.expect("close");

    // the abandoned transaction did not link anything, and the server still works
    tokio::time::sleep(Duration::from_millis(200)).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.relations")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 0);
    let results: Vec<String> = sqlx::query_scalar(
        "SELECT result FROM intake.audit_log WHERE action = 'zvv.intake.v1.SubjectService/LinkRelation'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit rows");
    assert_eq!(
        results,
        ["DEADLINE_EXCEEDED"],
        "the abandoned call is audited"
    );
    app.link(&parent.subject_id, &child.subject_id).await;
}

/// A caller whose own deadline passes while its call waits: the server drops the call, nothing
/// is stored, and the call still leaves exactly one audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_at_the_callers_deadline_is_audited_once() {
    let app = TestApp::spawn().await;
    let parent = app.register(BSN, "Marieke").await;
    let child = app.register(&valid_bsn(1), "Sanne").await;

    let mut lock = hold_relations_lock(&app).await;
    let mut request = tonic::Request::new(link_request(&parent.subject_id, &child.subject_id));
    request.set_timeout(Duration::from_millis(400));
    let status = expect_err(
        app.client(&app.muni_coordinator())
            .link_relation(request)
            .await,
        "call past the caller's deadline",
    );
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    sqlx::query(RELATIONS_UNLOCK)
        .execute(&mut lock)
        .await
        .expect("release lock");
    lock.close().await.expect("close");

    let mut results: Vec<String> = Vec::new();
    for _ in 0..100 {
        results = sqlx::query_scalar(
            "SELECT result FROM intake.audit_log WHERE action = 'zvv.intake.v1.SubjectService/LinkRelation'",
        )
        .fetch_all(&app.pool)
        .await
        .expect("audit rows");
        if !results.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again: Vec<String> = sqlx::query_scalar(
        "SELECT result FROM intake.audit_log WHERE action = 'zvv.intake.v1.SubjectService/LinkRelation'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit rows");
    assert_eq!(results, ["CANCELLED"]);
    assert_eq!(again, results, "exactly one record");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.relations")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 0);
    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
}
