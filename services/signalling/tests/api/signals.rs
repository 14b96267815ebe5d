//! GetSignal and ListSignals of the caller's own organisation: status filter and paging.

use std::collections::HashSet;

use tonic::Code;
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    SCHOOL, TestApp, YOUTH_HEALTH, assert_code, assert_invalid, expect_err, valid_bsn,
};

#[tokio::test]
async fn get_signal_returns_what_was_registered() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let registered = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    let read = app
        .client(SCHOOL)
        .get_signal(pb::GetSignalRequest {
            signal_id: registered.signal_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(read, registered);

    let status = expect_err(
        app.client(SCHOOL)
            .get_signal(pb::GetSignalRequest {
                signal_id: "x".into(),
            })
            .await,
        "malformed id",
    );
    assert_invalid(&status, "signal_id", "malformed id");
    assert_code(
        app.client(SCHOOL)
            .get_signal(pb::GetSignalRequest {
                signal_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        Code::NotFound,
        "unknown id",
    );
}

#[tokio::test]
async fn list_signals_filters_by_status_and_pages_without_gaps() {
    let app = TestApp::spawn().await;
    let mut active = HashSet::new();
    let mut closed = HashSet::new();
    for n in 0..7 {
        let subject = app.child(&valid_bsn(10 + n)).await;
        let id = app
            .signal(SCHOOL, &subject)
            .await
            .signal
            .expect("signal")
            .signal_id;
        if n % 3 == 0 {
            app.close(SCHOOL, &id).await;
            closed.insert(id);
        } else {
            active.insert(id);
        }
        // another organisation's signal on the same child is never listed
        app.signal(YOUTH_HEALTH, &subject).await;
    }
    assert_eq!((active.len(), closed.len()), (4, 3));

    for page_size in [0, 1, 2, 100] {
        let all = app
            .list_signals(SCHOOL, pb::SignalStatus::Unspecified, page_size)
            .await;
        let ids: Vec<String> = all.iter().map(|s| s.signal_id.clone()).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "no duplicates at page size {page_size}"
        );
        assert_eq!(
            unique,
            active.union(&closed).cloned().collect(),
            "page size {page_size}"
        );
        assert!(all.iter().all(|s| s.organisation == SCHOOL.name));

        let only_active: HashSet<String> = app
            .list_signals(SCHOOL, pb::SignalStatus::Active, page_size)
            .await
            .into_iter()
            .map(|s| {
                assert_eq!(s.status, pb::SignalStatus::Active as i32);
                s.signal_id
            })
            .collect();
        assert_eq!(only_active, active, "ACTIVE at page size {page_size}");

        let only_closed: HashSet<String> = app
            .list_signals(SCHOOL, pb::SignalStatus::Closed, page_size)
            .await
            .into_iter()
            .map(|s| s.signal_id)
            .collect();
        assert_eq!(only_closed, closed, "CLOSED at page size {page_size}");
    }
    assert!(
        app.list_signals(SCHOOL, pb::SignalStatus::Expired, 0)
            .await
            .is_empty()
    );

    // a page of 2 says there is more
    let page = app
        .client(SCHOOL)
        .list_signals(pb::ListSignalsRequest {
            page_size: 2,
            page_token: String::new(),
            status: pb::SignalStatus::Unspecified as i32,
        })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.signals.len(), 2);
    assert!(!page.next_page_token.is_empty());

    // a page size out of range and a forged page token are refused
    let status = expect_err(
        app.client(SCHOOL)
            .list_signals(pb::ListSignalsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        "negative page size",
    );
    assert_invalid(&status, "page_size", "negative page size");
    let status = expect_err(
        app.client(SCHOOL)
            .list_signals(pb::ListSignalsRequest {
                page_token: "not a token".into(),
                ..Default::default()
            })
            .await,
        "forged page token",
    );
    assert_invalid(&status, "page_token", "forged page token");
}
