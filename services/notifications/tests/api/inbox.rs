//! The inbox: paged lists, read marks, and a stream that resumes after its last cursor with no
//! gap and no duplicate, with heartbeats while idle; each organisation sees only its own.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use zvv_proto::notifications::v1::{self as pb, stream_inbox_response::Message};

use crate::helpers::*;

#[tokio::test]
async fn lists_page_and_items_are_marked_read_by_their_organisation_only() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    for _ in 0..5 {
        publish(&app, match_event("CLIENT", &["school-1"])).await;
    }
    let all = inbox_with(&mut school, 5).await;
    assert_eq!(all.len(), 5);
    let first = school
        .list_inbox(pb::ListInboxRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.items.len(), 2);
    let second = school
        .list_inbox(pb::ListInboxRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.items.len(), 3);
    assert!(second.next_page_token.is_empty());
    let ids: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|i| i.notification_id.clone())
        .collect();
    let expected: Vec<String> = all.iter().map(|i| i.notification_id.clone()).collect();
    assert_eq!(ids, expected);

    // another organisation cannot mark them
    let mut care = app.client(CARE);
    let status = expect_err(
        care.mark_read(pb::MarkReadRequest {
            request_id: request_id(),
            notification_ids: vec![ids[0].clone()],
        })
        .await,
        "another's item",
    );
    assert_eq!(status.code(), Code::NotFound);
    let marked = school
        .mark_read(pb::MarkReadRequest {
            request_id: request_id(),
            notification_ids: vec![ids[0].clone(), ids[1].clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .marked;
    assert_eq!(marked, 2);
    let unread = school
        .list_inbox(pb::ListInboxRequest {
            unread_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(unread.len(), 3);
    let status = expect_err(
        school
            .list_inbox(pb::ListInboxRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
        "bad token",
    );
    assert_invalid(&status, "page_token", "bad token");
}

async fn next_item(stream: &mut tonic::Streaming<pb::StreamInboxResponse>) -> pb::InboxItem {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an item within 10 s")
            .expect("the stream is open")
            .expect("no error")
            .message
            .expect("a message");
        if let Message::Item(item) = message {
            return item;
        }
    }
}

#[tokio::test]
async fn a_stream_gives_what_waits_then_live_and_resumes_without_gap_or_duplicate() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    let mut published = Vec::new();
    for _ in 0..3 {
        let e = match_event("CLIENT", &["school-1"]);
        published.push(e.event_id.clone());
        publish(&app, e).await;
    }
    let mut stream = school
        .stream_inbox(pb::StreamInboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_item(&mut stream).await.event.unwrap().event_id);
    }
    // live
    let e = match_event("CLIENT", &["school-1"]);
    published.push(e.event_id.clone());
    publish(&app, e).await;
    let item = next_item(&mut stream).await;
    seen.push(item.event.unwrap().event_id);
    let cursor = item.cursor;
    drop(stream);
    // while nobody listens, more arrive, some at the same moment
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let e = match_event("CLIENT", &["school-1"]);
        published.push(e.event_id.clone());
        let client = app.service("signalling");
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            client
                .publish(pb::PublishRequest { event: Some(e) })
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut resumed = school
        .stream_inbox(pb::StreamInboxRequest {
            after_cursor: cursor,
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..6 {
        seen.push(next_item(&mut resumed).await.event.unwrap().event_id);
    }
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    sorted_seen.dedup();
    assert_eq!(sorted_seen.len(), seen.len(), "no duplicate");
    let mut sorted_published = published.clone();
    sorted_published.sort();
    assert_eq!(sorted_seen, sorted_published, "no gap");
    // each stream's opening and every batch it gave are audited, naming the events
    assert!(app.audited("StreamInbox", "OK").await >= 4);
    let named: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT unnest(object_ids) FROM notifications.audit_entries \
         WHERE action = 'zvv.notifications.v1.NotificationService/StreamInbox'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for id in &published {
        assert!(
            named.contains(&id.parse().unwrap()),
            "event {id} streamed without audit"
        );
    }
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_and_nothing_of_other_organisations() {
    let app = TestApp::spawn().await;
    let mut care = app.client(CARE);
    subscribe_inbox(&mut care, vec![channel("signalling.matches", &[])]).await;
    let mut school = app.client(SCHOOL);
    subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    let mut stream = care
        .stream_inbox(pb::StreamInboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    let mut heartbeats = 0;
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .unwrap()
            .message
            .unwrap();
        match message {
            Message::Heartbeat(_) => heartbeats += 1,
            Message::Item(item) => panic!("care got school's item {item:?}"),
        }
    }
    assert_eq!(heartbeats, 3);
    let status = expect_err(
        care.stream_inbox(pb::StreamInboxRequest {
            after_cursor: "1.x".into(),
        })
        .await,
        "bad cursor",
    );
    assert_invalid(&status, "after_cursor", "bad cursor");
}
