//! Subscriptions: own organisation only, webhooks verified with a signed test notification,
//! write-only Authorization, a signing secret shown once, no SSRF into the cluster.

use tonic::Code;
use zvv_notifications::domain::target::{Network, TargetPolicy};
use zvv_proto::notifications::v1::{self as pb, create_subscription_request::Delivery};

use crate::helpers::*;

fn webhook(url: &str, authorization: &str) -> Option<Delivery> {
    Some(Delivery::Webhook(pb::WebhookDelivery {
        url: url.into(),
        authorization: authorization.into(),
    }))
}

#[tokio::test]
async fn a_webhook_is_verified_signed_and_its_secrets_are_never_shown_again() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let request_id = request_id();
    let request = pb::CreateSubscriptionRequest {
        request_id: request_id.clone(),
        channels: vec![channel("signalling.matches", &[])],
        delivery: webhook(&app.receiver.url, "Bearer hook-s3cret"),
    };
    let created = school
        .create_subscription(request.clone())
        .await
        .expect("create")
        .into_inner();
    app.receiver.add_secret(&created.signing_secret);
    let test = &app.receiver.received()[0];
    assert_eq!(test.body["kanaal"], "test");
    assert!(
        test.signature_ok,
        "the test notification is signed with the new secret"
    );
    assert_eq!(test.authorization.as_deref(), Some("Bearer hook-s3cret"));
    let sub = created.subscription.unwrap();
    let Some(pb::subscription::Delivery::Webhook(w)) = &sub.delivery else {
        panic!("webhook delivery: {sub:?}");
    };
    assert_eq!(w.url, app.receiver.url);
    assert!(w.authorization.is_empty(), "write-only");
    // a replay answers the same subscription without the secret
    let replay = school
        .create_subscription(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replay.subscription.unwrap().subscription_id,
        sub.subscription_id
    );
    assert!(replay.signing_secret.is_empty());
    // stored sealed: neither value is in the row
    let row: (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT authorization_sealed, secret_sealed FROM notifications.subscriptions",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let secret = zvv_notifications::domain::webhook::parse_secret(&created.signing_secret).unwrap();
    assert!(!row.0.windows(11).any(|w| w == b"hook-s3cret"));
    assert!(!row.1.windows(secret.len()).any(|w| w == secret.as_slice()));
    let got = school
        .get_subscription(pb::GetSubscriptionRequest {
            subscription_id: sub.subscription_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    let Some(pb::subscription::Delivery::Webhook(w)) = got.delivery else {
        panic!("webhook");
    };
    assert!(w.authorization.is_empty());
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_204_is_refused() {
    let app = TestApp::spawn().await;
    app.receiver.set_mode(Mode::Fail);
    let mut school = app.client(SCHOOL);
    let status = expect_err(
        school
            .create_subscription(pb::CreateSubscriptionRequest {
                request_id: request_id(),
                channels: vec![channel("signalling.matches", &[])],
                delivery: webhook(&app.receiver.url, ""),
            })
            .await,
        "failing webhook",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("204"), "{status:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(
        app.audited("CreateSubscription", "FAILED_PRECONDITION")
            .await,
        1
    );
}

#[tokio::test]
async fn webhooks_into_the_cluster_are_refused() {
    let app = TestApp::spawn_with(TargetPolicy {
        development: false,
        allowed: vec![Network::parse("10.20.0.0/16").unwrap()],
    })
    .await;
    let mut school = app.client(SCHOOL);
    for url in [
        app.receiver.url.as_str(),
        "http://hooks.example.org/zvv",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://user:pw@hooks.example.org/",
        "https://localhost/hook",
    ] {
        let status = expect_err(
            school
                .create_subscription(pb::CreateSubscriptionRequest {
                    request_id: request_id(),
                    channels: vec![channel("signalling.matches", &[])],
                    delivery: webhook(url, ""),
                })
                .await,
            url,
        );
        assert_invalid(&status, "delivery.webhook.url", url);
    }
    assert!(app.receiver.received().is_empty(), "nothing was called");
}

#[tokio::test]
async fn subscriptions_belong_to_their_organisation() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let mut care = app.client(CARE);
    let id = subscribe_inbox(&mut school, vec![channel("signalling.matches", &[])]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let theirs = expect_err(
        care.get_subscription(pb::GetSubscriptionRequest {
            subscription_id: id.clone(),
        })
        .await,
        "another organisation's",
    );
    let none = expect_err(
        care.get_subscription(pb::GetSubscriptionRequest {
            subscription_id: unknown.clone(),
        })
        .await,
        "unknown",
    );
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(
        theirs.message().replace(&id, "ID"),
        none.message().replace(&unknown, "ID"),
        "another organisation's subscription answers as an unknown one"
    );
    let listed = care
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.subscriptions.is_empty());
    let status = expect_err(
        care.delete_subscription(pb::DeleteSubscriptionRequest {
            request_id: request_id(),
            subscription_id: id.clone(),
        })
        .await,
        "delete another's",
    );
    assert_eq!(status.code(), Code::NotFound);
    let mine = school
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.subscriptions.len(), 1);
    school
        .delete_subscription(pb::DeleteSubscriptionRequest {
            request_id: request_id(),
            subscription_id: id.clone(),
        })
        .await
        .expect("delete own");
    let status = expect_err(
        school
            .get_subscription(pb::GetSubscriptionRequest {
                subscription_id: id,
            })
            .await,
        "deleted",
    );
    assert_eq!(status.code(), Code::NotFound);
    // a deleted subscription receives nothing
    publish(&app, match_event("CLIENT", &["school-1"])).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(inbox(&mut school).await.is_empty());
}

#[tokio::test]
async fn requests_are_checked_and_service_delivery_is_for_suite_services() {
    let app = TestApp::spawn().await;
    let mut school = app.client(SCHOOL);
    let status = expect_err(
        school
            .create_subscription(pb::CreateSubscriptionRequest {
                request_id: request_id(),
                channels: vec![channel("intake.subjects", &[])],
                delivery: Some(Delivery::Service(pb::ServiceDelivery {
                    name: "signalling".into(),
                })),
            })
            .await,
        "service delivery by a school",
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let cases = [
        (
            "request_id",
            String::new(),
            vec![channel("signalling.matches", &[])],
            Some(Delivery::Inbox(pb::InboxDelivery {})),
        ),
        (
            "channels",
            request_id(),
            vec![],
            Some(Delivery::Inbox(pb::InboxDelivery {})),
        ),
        (
            "channels[0].channel",
            request_id(),
            vec![channel("signalling.secrets", &[])],
            Some(Delivery::Inbox(pb::InboxDelivery {})),
        ),
        (
            "channels[0].filters[\"colour\"]",
            request_id(),
            vec![channel("signalling.referrals", &[("colour", "RED")])],
            Some(Delivery::Inbox(pb::InboxDelivery {})),
        ),
        (
            "channels[0].filters[\"level\"]",
            request_id(),
            vec![channel("signalling.referrals", &[("level", "not a code")])],
            Some(Delivery::Inbox(pb::InboxDelivery {})),
        ),
        (
            "delivery",
            request_id(),
            vec![channel("signalling.matches", &[])],
            None,
        ),
        (
            "delivery.webhook.url",
            request_id(),
            vec![channel("signalling.matches", &[])],
            webhook("not a url", ""),
        ),
        (
            "delivery.webhook.authorization",
            request_id(),
            vec![channel("signalling.matches", &[])],
            webhook(&app.receiver.url, "Bearer \u{1}"),
        ),
    ];
    for (field, request_id, channels, delivery) in cases {
        let status = expect_err(
            school
                .create_subscription(pb::CreateSubscriptionRequest {
                    request_id,
                    channels,
                    delivery,
                })
                .await,
            field,
        );
        assert_invalid(&status, field, field);
    }
    // a suite service subscribes only its own EventSink: a leaked SERVICE token cannot send
    // events to a webhook, an inbox or another service
    let mut signalling = app.service("signalling");
    for (case, delivery) in [
        (
            "another service's sink",
            Delivery::Service(pb::ServiceDelivery {
                name: "reporting".into(),
            }),
        ),
        ("an inbox", Delivery::Inbox(pb::InboxDelivery {})),
        (
            "a webhook",
            Delivery::Webhook(pb::WebhookDelivery {
                url: app.receiver.url.clone(),
                authorization: String::new(),
            }),
        ),
    ] {
        let status = expect_err(
            signalling
                .create_subscription(pb::CreateSubscriptionRequest {
                    request_id: request_id(),
                    channels: vec![channel("intake.subjects", &[])],
                    delivery: Some(delivery),
                })
                .await,
            case,
        );
        assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
    }
    // intake's channels are for suite services only
    let status = expect_err(
        school
            .create_subscription(pb::CreateSubscriptionRequest {
                request_id: request_id(),
                channels: vec![channel("intake.subjects", &[])],
                delivery: Some(Delivery::Inbox(pb::InboxDelivery {})),
            })
            .await,
        "a school on intake.subjects",
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        app.receiver.received().is_empty(),
        "no test notification was sent"
    );
}
