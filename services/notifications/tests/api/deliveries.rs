//! Webhook deliveries: signed ZGW bodies, at least once, retried through an outage of hours,
//! dead-lettered only after the retention window (visibly), 410 Gone disables, order per
//! resource, redelivery on request.

use std::collections::HashSet;

use chrono::Duration;
use tonic::Code;
use zvv_platform::clock::Clock;
use zvv_proto::notifications::v1 as pb;

use crate::helpers::*;

async fn deliveries(
    client: &mut Client,
    sub: &str,
    status: pb::DeliveryStatus,
) -> Vec<pb::Delivery> {
    client
        .list_deliveries(pb::ListDeliveriesRequest {
            subscription_id: sub.into(),
            status: status as i32,
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

#[tokio::test]
async fn a_match_reaches_the_webhook_signed_as_a_zgw_notificatie() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let sub = subscribe_webhook(
        &app,
        &mut school,
        vec![channel("signalling.matches", &[])],
        "Token abc",
    )
    .await;
    let e = match_event("FAMILY", &["school-1", "jeugdzorg-1"]);
    publish(&app, e.clone()).await;
    assert_eq!(app.deliver().await, 1);
    let got = app.receiver.notifications();
    assert_eq!(got.len(), 1);
    let n = &got[0];
    assert!(n.signature_ok, "signed with the subscription's secret");
    assert_eq!(n.webhook_id, e.event_id);
    assert_eq!(n.authorization.as_deref(), Some("Token abc"));
    assert_eq!(n.body["kanaal"], "signalling.matches");
    assert_eq!(n.body["actie"], "create");
    assert_eq!(n.body["resource"], "match");
    assert_eq!(
        n.body["hoofdObject"],
        format!(
            "http://127.0.0.1:50054/signalling/v1/matches/{}",
            e.resource_id
        )
    );
    assert_eq!(n.body["kenmerken"]["kind"], "FAMILY");
    assert!(
        n.body["aanmaakdatum"]
            .as_str()
            .unwrap()
            .starts_with("2026-06-15T10:00:00")
    );
    let done = deliveries(&mut school, &sub, pb::DeliveryStatus::Delivered).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 1);
    assert_eq!(done[0].last_http_status, 200);
    // nothing more to do
    assert_eq!(app.deliver().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_outage_of_hours_loses_nothing_and_keeps_order_per_resource() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let sub = subscribe_webhook(
        &app,
        &mut school,
        vec![channel("signalling.matches", &[])],
        "",
    )
    .await;
    app.receiver.set_mode(Mode::Fail);
    // three events of one match, in order, and two other matches
    let first = match_event("CLIENT", &["school-1"]);
    let mut updated = first.clone();
    updated.event_id = uuid::Uuid::new_v4().to_string();
    updated.action = "updated".into();
    let mut closed = first.clone();
    closed.event_id = uuid::Uuid::new_v4().to_string();
    closed.action = "closed".into();
    let others = [
        match_event("CLIENT", &["school-1"]),
        match_event("FAMILY", &["school-1"]),
    ];
    for e in [first.clone(), updated.clone(), closed.clone()]
        .iter()
        .chain(others.iter())
    {
        publish(&app, e.clone()).await;
    }
    // the receiver is down for 30 hours; the clock moves on, attempts fail and are retried
    for _ in 0..40 {
        app.deliver().await;
        app.clock.advance(Duration::minutes(45));
    }
    let retrying = deliveries(&mut school, &sub, pb::DeliveryStatus::Retrying).await;
    assert_eq!(
        retrying.len(),
        3,
        "only the first of each match is tried: order per resource"
    );
    assert!(
        retrying
            .iter()
            .all(|d| d.attempts > 5 && d.last_http_status == 503)
    );
    assert!(
        deliveries(&mut school, &sub, pb::DeliveryStatus::DeadLettered)
            .await
            .is_empty()
    );
    // up again: everything is delivered
    app.receiver.set_mode(Mode::Accept);
    for _ in 0..10 {
        app.clock.advance(Duration::minutes(11));
        app.deliver().await;
    }
    let delivered = deliveries(&mut school, &sub, pb::DeliveryStatus::Delivered).await;
    assert_eq!(delivered.len(), 5);
    let ok: Vec<_> = app
        .receiver
        .notifications()
        .into_iter()
        .filter(|n| n.signature_ok)
        .collect();
    let ids: HashSet<_> = ok.iter().map(|n| n.webhook_id.clone()).collect();
    assert_eq!(
        ids.len(),
        5,
        "every event arrived (duplicates only by event id)"
    );
    // a later event of the match was never sent before an earlier one was delivered
    let mut order: Vec<String> = Vec::new();
    for n in app.receiver.notifications() {
        let of_match =
            [&first.event_id, &updated.event_id, &closed.event_id].contains(&&n.webhook_id);
        if of_match && !order.contains(&n.webhook_id) {
            order.push(n.webhook_id);
        }
    }
    assert_eq!(
        order,
        vec![first.event_id, updated.event_id, closed.event_id]
    );
}

#[tokio::test]
async fn a_delivery_is_dead_lettered_only_after_the_window_and_can_be_redelivered() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let sub = subscribe_webhook(
        &app,
        &mut school,
        vec![channel("signalling.matches", &[])],
        "",
    )
    .await;
    app.receiver.set_mode(Mode::Fail);
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    // just before the end of the 72 h window it is still being retried
    for _ in 0..100 {
        app.deliver().await;
        if app.clock.now() > now() + Duration::hours(71) {
            break;
        }
        app.clock.advance(Duration::minutes(50));
    }
    assert!(
        deliveries(&mut school, &sub, pb::DeliveryStatus::DeadLettered)
            .await
            .is_empty()
    );
    app.clock.advance(Duration::hours(2));
    app.deliver().await;
    app.deliver().await;
    let dead = deliveries(&mut school, &sub, pb::DeliveryStatus::DeadLettered).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.contains("503"), "{:?}", dead[0]);
    // announced in the organisation's inbox
    let items = inbox_with(&mut school, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, pb::InboxItemKind::DeadLetter as i32);
    assert_eq!(items[0].delivery_id, dead[0].delivery_id);
    // another organisation cannot see or redeliver it
    let mut care = app.client(CARE);
    let status = expect_err(
        care.list_deliveries(pb::ListDeliveriesRequest {
            subscription_id: sub.clone(),
            ..Default::default()
        })
        .await,
        "another's deliveries",
    );
    assert_eq!(status.code(), Code::NotFound);
    let status = expect_err(
        care.redeliver(pb::RedeliverRequest {
            request_id: request_id(),
            delivery_ids: vec![dead[0].delivery_id.clone()],
        })
        .await,
        "another's redelivery",
    );
    assert_eq!(status.code(), Code::NotFound);
    // the owner redelivers once the receiver is back
    app.receiver.set_mode(Mode::Accept);
    let scheduled = school
        .redeliver(pb::RedeliverRequest {
            request_id: request_id(),
            delivery_ids: vec![dead[0].delivery_id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .scheduled;
    assert_eq!(scheduled, 1);
    assert_eq!(app.deliver().await, 1);
    assert_eq!(
        deliveries(&mut school, &sub, pb::DeliveryStatus::Delivered)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn gone_disables_the_subscription() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let sub = subscribe_webhook(
        &app,
        &mut school,
        vec![channel("signalling.matches", &[])],
        "",
    )
    .await;
    app.receiver.set_mode(Mode::Gone);
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    app.deliver().await;
    let got = school
        .get_subscription(pb::GetSubscriptionRequest {
            subscription_id: sub.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(got.status, pb::SubscriptionStatus::Disabled as i32);
    let dead = deliveries(&mut school, &sub, pb::DeliveryStatus::DeadLettered).await;
    assert_eq!(dead.len(), 2, "what was pending is given up, visibly");
    // nothing more is routed to it
    assert_eq!(
        publish(&app, match_event("CLIENT", &["school-1"]))
            .await
            .routed,
        0
    );
}

#[tokio::test]
async fn a_stale_worker_cannot_undo_what_a_later_one_recorded() {
    use zvv_notifications::{
        domain::deliveries::AfterFailure,
        store::{Attempt, DeliveryStore, PgStore},
    };
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let sub = subscribe_webhook(
        &app,
        &mut school,
        vec![channel("signalling.matches", &[])],
        "",
    )
    .await;
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    let store = PgStore::new(app.runtime_pool.clone());
    let t0 = app.clock.now();
    let a = store
        .claim_due(t0, t0 + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert!(
        store
            .claim_due(t0, t0 + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // worker A hangs past its lease; worker B takes the delivery over and delivers it
    let t1 = t0 + Duration::minutes(2);
    let b = store
        .claim_due(t1, t1 + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_ne!(a[0].lease_id, b[0].lease_id);
    store
        .record_delivered(&[(b[0].delivery_id, b[0].lease_id, 200)], t1)
        .await
        .unwrap();
    // A's late failure changes nothing
    store
        .record_attempt(
            &a[0],
            Attempt::Failed {
                http_status: 503,
                error: "late".into(),
                then: AfterFailure::RetryAt(t1 + Duration::seconds(1)),
            },
            t1,
        )
        .await
        .unwrap();
    let done = deliveries(&mut school, &sub, pb::DeliveryStatus::Delivered).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 1);
    assert_eq!(done[0].last_http_status, 200);
    // and a deleted subscription's deliveries are never leased again
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    school
        .delete_subscription(pb::DeleteSubscriptionRequest {
            request_id: request_id(),
            subscription_id: sub,
        })
        .await
        .unwrap();
    assert!(
        store
            .claim_due(t1, t1 + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
