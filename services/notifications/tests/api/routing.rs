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

/// A deadline warning of reintegration about an action of the income condition, addressed to
/// these organisations and municipalities.
fn deadline(action: &str, orgs: &[&str], municipalities: &[&str]) -> zvv_proto::events::v1::Event {
    let mut e = event(
        "reintegration",
        "reintegration.deadlines",
        "deadline",
        action,
    );
    let id = || uuid::Uuid::new_v4().to_string();
    for (key, value) in [
        ("deadline_id", e.resource_id.clone()),
        ("detention_id", id()),
        ("condition_id", id()),
        ("task_id", id()),
        ("condition", "INCOME".to_owned()),
        ("due_action", "SUSPEND_BENEFIT".to_owned()),
        ("municipality_code", "GM0855".to_owned()),
    ] {
        e.attributes.insert(key.into(), value);
    }
    e.audience = Some(zvv_proto::events::v1::Audience {
        organisations: orgs.iter().map(|o| (*o).to_owned()).collect(),
        municipality_codes: municipalities.iter().map(|m| (*m).to_owned()).collect(),
    });
    e
}

async fn publish_reintegration(
    app: &TestApp,
    event: zvv_proto::events::v1::Event,
) -> pb::PublishResponse {
    app.service("reintegration")
        .publish(pb::PublishRequest { event: Some(event) })
        .await
        .expect("reintegration publishes")
        .into_inner()
}

/// Inbox items of `organisation` as stored, whoever reads them.
async fn stored_items(app: &TestApp, organisation: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notifications.inbox WHERE organisation = $1")
        .bind(organisation)
        .fetch_one(&app.pool)
        .await
        .expect("count inbox items")
}

#[tokio::test]
async fn a_deadline_warning_for_a_partner_reaches_that_partner_only() {
    use zvv_platform::auth::{OrgType, Role};
    let app = TestApp::spawn().await;
    let deadlines = || vec![channel("reintegration.deadlines", &[])];
    let partner = |org: &str| {
        app.client_with(app.keys.token_in(
            org,
            OrgType::Probation,
            &[Role::Professional],
            &["GM0855"],
        ))
    };
    let mut zuid = partner("reclassering-zuid");
    let mut noord = partner("reclassering-noord");
    let mut municipality = app.client_with(app.keys.token_in(
        "gm0855",
        OrgType::Municipality,
        &[Role::Coordinator],
        &["GM0855"],
    ));
    for c in [&mut zuid, &mut noord, &mut municipality] {
        subscribe_inbox(c, deadlines()).await;
    }

    // the task holder is warned before the date: only it
    let approaching = deadline("approaching", &["reclassering-zuid"], &[]);
    assert_eq!(
        publish_reintegration(&app, approaching.clone())
            .await
            .routed,
        1
    );
    let items = inbox_with(&mut zuid, 1).await;
    assert_eq!(items.len(), 1);
    let got = items[0].event.as_ref().unwrap();
    assert_eq!(got.event_id, approaching.event_id);
    assert_eq!(got.channel, "reintegration.deadlines");
    assert_eq!(got.action, "approaching");
    assert_eq!(got.attributes["due_action"], "SUSPEND_BENEFIT");
    assert_eq!(got.attributes["condition"], "INCOME");

    // a miss goes to the task holder and the municipality
    let missed = deadline("missed", &["reclassering-zuid"], &["GM0855"]);
    assert_eq!(publish_reintegration(&app, missed.clone()).await.routed, 2);
    assert_eq!(inbox_with(&mut zuid, 2).await.len(), 2);
    let items = inbox_with(&mut municipality, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].event.as_ref().unwrap().event_id, missed.event_id);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        inbox(&mut noord).await.is_empty(),
        "another partner of the same municipality"
    );
    assert_eq!(stored_items(&app, "reclassering-noord").await, 0);
}

#[tokio::test]
async fn a_deadline_warning_for_a_municipality_reaches_its_professionals_and_coordinators_only() {
    use zvv_platform::auth::{OrgType, Role};
    let app = TestApp::spawn().await;
    let deadlines = || vec![channel("reintegration.deadlines", &[])];
    let client = |org: &str, org_type: OrgType, roles: &[Role], codes: &[&str]| {
        app.client_with(app.keys.token_in(org, org_type, roles, codes))
    };
    let mut coordinator = client(
        "gm0855",
        OrgType::Municipality,
        &[Role::Coordinator],
        &["GM0855"],
    );
    let mut professional = client(
        "gm0855-schuldhulp",
        OrgType::Municipality,
        &[Role::Professional],
        &["GM0855"],
    );
    let mut amsterdam = client(
        "gm0363",
        OrgType::Municipality,
        &[Role::Coordinator],
        &["GM0363"],
    );
    // an analyst may not subscribe at all; one who is also a triage officer may, but the
    // channel requires a professional or a coordinator
    let refused = client(
        "gm0855-onderzoek",
        OrgType::Municipality,
        &[Role::Analyst],
        &["GM0855"],
    )
    .create_subscription(pb::CreateSubscriptionRequest {
        request_id: request_id(),
        channels: deadlines(),
        delivery: Some(pb::create_subscription_request::Delivery::Inbox(
            pb::InboxDelivery {},
        )),
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut analyst = client(
        "gm0855-onderzoek",
        OrgType::Municipality,
        &[Role::Analyst, Role::TriageOfficer],
        &["GM0855"],
    );
    // a partner whose jurisdiction names GM0855 is no municipality: it receives only what
    // names it
    let mut probation = client(
        "reclassering-zuid",
        OrgType::Probation,
        &[Role::Professional, Role::Coordinator],
        &["GM0855"],
    );
    for c in [
        &mut coordinator,
        &mut professional,
        &mut amsterdam,
        &mut analyst,
        &mut probation,
    ] {
        subscribe_inbox(c, deadlines()).await;
    }

    let warning = deadline("approaching", &[], &["GM0855"]);
    assert_eq!(publish_reintegration(&app, warning.clone()).await.routed, 2);
    for c in [&mut coordinator, &mut professional] {
        let items = inbox_with(c, 1).await;
        assert_eq!(items.len(), 1);
        let got = items[0].event.as_ref().unwrap();
        assert_eq!(got.event_id, warning.event_id);
        assert_eq!(got.attributes["municipality_code"], "GM0855");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (name, c) in [
        ("gm0363", &mut amsterdam),
        ("gm0855-onderzoek", &mut analyst),
        ("reclassering-zuid", &mut probation),
    ] {
        assert!(inbox(c).await.is_empty(), "{name} sees it");
        assert_eq!(stored_items(&app, name).await, 0, "{name} got it");
    }
    // the same for the other channels of reintegration: a task completed is for the
    // municipality, not for a partner with the municipality in its claim
    subscribe_inbox(&mut probation, vec![channel("reintegration.tasks", &[])]).await;
    subscribe_inbox(&mut coordinator, vec![channel("reintegration.tasks", &[])]).await;
    let mut done = event("reintegration", "reintegration.tasks", "task", "completed");
    done.attributes
        .insert("task_id".into(), done.resource_id.clone());
    done.attributes.insert("condition".into(), "INCOME".into());
    done.audience.as_mut().unwrap().municipality_codes = vec!["GM0855".into()];
    assert_eq!(publish_reintegration(&app, done).await.routed, 1);
    assert_eq!(inbox_with(&mut coordinator, 2).await.len(), 2);
    assert_eq!(stored_items(&app, "reclassering-zuid").await, 0);
}
