//! Need-to-know routing: an event reaches only the organisations in its audience (by id, or by
//! municipality with the channel's role and type), suite services get everything, and filters
//! hold with values, wildcards and absent keys.

use std::time::Duration;

use zvv_proto::notifications::v1 as pb;

use crate::helpers::*;

fn referral(level: &str, municipality: &str) -> zvv_proto::events::v1::Event {
    let mut e = event(
        "signalling",
        "signalling.referrals",
        "referral",
        "submitted",
    );
    e.attributes.insert("level".into(), level.into());
    e.attributes
        .insert("municipality_code".into(), municipality.into());
    e.audience.as_mut().unwrap().municipality_codes = vec![municipality.into()];
    e
}

#[tokio::test]
async fn an_event_reaches_only_its_audience() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let mut care = app.client(CARE);
    subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    subscribe_inbox(&mut care, vec![channel("signalling.matches", &[])]).await;
    let routed = publish(&app, match_event("CLIENT", &["school-1"])).await;
    assert_eq!(routed.routed, 1);
    assert_eq!(inbox_with(&mut school, 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        inbox(&mut care).await.is_empty(),
        "care is not in the match"
    );
}

#[tokio::test]
async fn a_municipality_audience_reaches_its_triage_desks_only() {
    let app = TestApp::spawn().await;
    let mut amsterdam = app.client(TRIAGE_AMSTERDAM);
    let mut rotterdam = app.client(TRIAGE_ROTTERDAM);
    // the same municipality, but no triage officer: the channel requires the role
    let mut clerk = app.client_with(app.keys.token_in(
        "gm0363-clerks",
        CLERK_AMSTERDAM.org_type,
        &[CLERK_AMSTERDAM.role],
        CLERK_AMSTERDAM.municipalities,
    ));
    // the role and the municipality, but no triage desk
    let mut police = app.client_with(app.keys.token_in(
        "politie-1",
        zvv_platform::auth::OrgType::Police,
        &[zvv_platform::auth::Role::TriageOfficer],
        &["GM0363"],
    ));
    for c in [&mut amsterdam, &mut rotterdam, &mut clerk, &mut police] {
        subscribe_inbox(c, vec![channel("signalling.referrals", &[])]).await;
    }
    assert_eq!(publish(&app, referral("RED", "GM0363")).await.routed, 1);
    let items = inbox_with(&mut amsterdam, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].event.as_ref().unwrap().attributes["level"], "RED");
    // a colleague of the same municipality who is no triage officer does not see it in the
    // organisation's inbox, nor can mark it
    let mut colleague = app.client(CLERK_AMSTERDAM);
    assert!(inbox(&mut colleague).await.is_empty());
    let status = expect_err(
        colleague
            .mark_read(pb::MarkReadRequest {
                request_id: request_id(),
                notification_ids: vec![items[0].notification_id.clone()],
            })
            .await,
        "a colleague without the role",
    );
    assert_eq!(status.code(), tonic::Code::NotFound);
    // rights are those of the reader now: the same desk with a token that no longer holds
    // GM0363 sees nothing of it (in a list or a stream)
    let mut moved = app.client_with(app.keys.token_in(
        TRIAGE_AMSTERDAM.name,
        TRIAGE_AMSTERDAM.org_type,
        &[TRIAGE_AMSTERDAM.role],
        &["GM0599"],
    ));
    assert!(inbox(&mut moved).await.is_empty());
    let mut stream = moved
        .stream_inbox(pb::StreamInboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_stream::StreamExt::next(&mut stream),
    )
    .await
    .expect("a message")
    .unwrap()
    .unwrap();
    assert!(
        matches!(
            first.message,
            Some(pb::stream_inbox_response::Message::Heartbeat(_))
        ),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inbox(&mut rotterdam).await.is_empty());
    assert!(inbox(&mut clerk).await.is_empty());
    assert!(inbox(&mut police).await.is_empty());
}

#[tokio::test]
async fn events_without_an_audience_reach_only_suite_services() {
    let app = TestApp::spawn().await;
    let mut municipality = app.client(TRIAGE_AMSTERDAM);
    // intake's events have no audience of organisations: nobody else may subscribe to them
    let refused = municipality
        .create_subscription(pb::CreateSubscriptionRequest {
            request_id: request_id(),
            channels: vec![channel("intake.subjects", &[])],
            delivery: Some(pb::create_subscription_request::Delivery::Inbox(
                pb::InboxDelivery {},
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // nor does a catch-all subscription of its own channels make them reach it
    subscribe_inbox(
        &mut municipality,
        vec![channel("signalling.referrals", &[])],
    )
    .await;
    let mut signalling = app.service("signalling");
    let sub = signalling
        .create_subscription(pb::CreateSubscriptionRequest {
            request_id: request_id(),
            channels: vec![channel("intake.subjects", &[("action", "deceased")])],
            delivery: Some(pb::create_subscription_request::Delivery::Service(
                pb::ServiceDelivery {
                    name: "signalling".into(),
                },
            )),
        })
        .await
        .expect("service subscription")
        .into_inner()
        .subscription
        .unwrap();
    assert!(
        sub.municipality_codes.is_empty(),
        "suite services are not limited"
    );
    let mut death = event("intake", "intake.subjects", "subject", "deceased");
    death
        .attributes
        .insert("subject_id".into(), death.resource_id.clone());
    let moved = event("intake", "intake.subjects", "subject", "moved");
    let intake = || app.service("intake");
    for e in [death.clone(), moved] {
        intake()
            .publish(pb::PublishRequest { event: Some(e) })
            .await
            .expect("intake publishes");
    }
    assert_eq!(app.deliver().await, 1, "only the death matches the filter");
    let got = app.sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, sub.subscription_id);
    assert_eq!(got[0].1.event_id, death.event_id);
    assert_eq!(got[0].1.attributes["subject_id"], death.resource_id);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inbox(&mut municipality).await.is_empty());
}

#[tokio::test]
async fn filters_hold_with_values_wildcards_and_absent_keys() {
    let app = TestApp::spawn().await;
    let mut desk = app.client(TRIAGE_AMSTERDAM);
    let red_only = channel("signalling.referrals", &[("level", "RED")]);
    subscribe_inbox(&mut desk, vec![red_only]).await;
    let mut other = app.client_with(app.keys.token_in(
        "veilig-thuis",
        zvv_platform::auth::OrgType::VeiligThuis,
        &[zvv_platform::auth::Role::TriageOfficer],
        &["GM0363"],
    ));
    // a decision is absent on submitted referrals: the wildcard holds, a value would not
    subscribe_inbox(
        &mut other,
        vec![channel(
            "signalling.referrals",
            &[("decision", "*"), ("action", "submitted")],
        )],
    )
    .await;
    let mut third = app.client_with(app.keys.token_in(
        "wijkteam",
        zvv_platform::auth::OrgType::NeighbourhoodTeam,
        &[zvv_platform::auth::Role::TriageOfficer],
        &["GM0363"],
    ));
    subscribe_inbox(
        &mut third,
        vec![channel(
            "signalling.referrals",
            &[("decision", "NO_ACTION")],
        )],
    )
    .await;
    publish(&app, referral("YELLOW", "GM0363")).await;
    publish(&app, referral("RED", "GM0363")).await;
    let items = inbox_with(&mut desk, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].event.as_ref().unwrap().attributes["level"], "RED");
    assert_eq!(inbox_with(&mut other, 2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inbox(&mut third).await.is_empty());
}
