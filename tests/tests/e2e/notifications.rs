//! Notifications end to end: intake's and signalling's outboxes are relayed to notifications,
//! which routes each event to exactly its audience: a match reaches the signed webhook and the
//! inbox of an organisation in it (and nobody else's), and a death recorded in intake reaches
//! signalling's EventSink, which destroys everything it holds about the child.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use zvv_e2e::Harness;
use zvv_notifications::domain::webhook;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::{
    intake::v1::{RegisterSubjectRequest, Subject as IntakeSubject, UpdateSubjectRequest},
    notifications::v1::{self as npb, create_subscription_request::Delivery},
    prost_types::FieldMask,
    signalling::v1::{Contact, RegisterSignalRequest, register_signal_request::Subject},
};

type Posts = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on loopback: 204 to everything, keeps what it got.
async fn receiver() -> (String, Posts) {
    let posts: Posts = Arc::default();
    async fn take(State(posts): State<Posts>, headers: HeaderMap, body: Bytes) -> StatusCode {
        posts.lock().unwrap().push((headers, body.to_vec()));
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/hook", post(take))
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, posts)
}

fn signal(bsn: &str) -> RegisterSignalRequest {
    RegisterSignalRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        subject: Some(Subject::Bsn(bsn.into())),
        contact: Some(Contact {
            name: "Mw. de Boer".into(),
            phone: "+31 20 555 0101".into(),
            email: "contact@example.nl".into(),
        }),
        duration_months: 0,
    }
}

async fn register_child(suite: &Harness, bsn: &str) -> String {
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    suite
        .intake(&muni)
        .unwrap()
        .register_subject(RegisterSubjectRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            bsn: bsn.into(),
            given_name: "Noor".into(),
            family_name: "de Vries".into(),
            birth_date: "2016-05-04".into(),
            municipality_code: "GM0363".into(),
            neighbourhood_code: "WK036305".into(),
        })
        .await
        .expect("child registered")
        .into_inner()
        .subject
        .unwrap()
        .subject_id
}

/// Waits until `check` holds, for at most 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 30 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_match_reaches_the_webhook_and_the_inbox_of_the_organisations_in_it() {
    let suite = Harness::start().await.expect("suite starts");
    let (url, posts) = receiver().await;
    let school = suite.token("school-42", OrgType::School, &[Role::Professional]);
    let mut notifications = suite.notifications(&school).unwrap();
    let created = notifications
        .create_subscription(npb::CreateSubscriptionRequest {
            request_id: "school-webhook".into(),
            channels: vec![npb::ChannelFilter {
                channel: "signalling.matches".into(),
                filters: Default::default(),
            }],
            delivery: Some(Delivery::Webhook(npb::WebhookDelivery {
                url,
                authorization: "Bearer receiver-key".into(),
            })),
        })
        .await
        .expect("webhook subscription")
        .into_inner();
    let secret = webhook::parse_secret(&created.signing_secret).unwrap();
    notifications
        .create_subscription(npb::CreateSubscriptionRequest {
            request_id: "school-inbox".into(),
            channels: vec![npb::ChannelFilter {
                channel: "signalling.matches".into(),
                filters: Default::default(),
            }],
            delivery: Some(Delivery::Inbox(npb::InboxDelivery {})),
        })
        .await
        .expect("inbox subscription");
    // an organisation that is not in the match subscribes too
    let other = suite.token("jeugdzorg-9", OrgType::YouthCare, &[Role::Professional]);
    let mut outsider = suite.notifications(&other).unwrap();
    outsider
        .create_subscription(npb::CreateSubscriptionRequest {
            request_id: "outsider-inbox".into(),
            channels: vec![npb::ChannelFilter {
                channel: "signalling.matches".into(),
                filters: Default::default(),
            }],
            delivery: Some(Delivery::Inbox(npb::InboxDelivery {})),
        })
        .await
        .expect("outsider subscription");

    register_child(&suite, "123456782").await;
    suite
        .signalling(&school)
        .unwrap()
        .register_signal(signal("123456782"))
        .await
        .expect("school signal");
    let jgz = suite.token("ggd-jgz", OrgType::YouthHealth, &[Role::Professional]);
    let second = suite
        .signalling(&jgz)
        .unwrap()
        .register_signal(signal("123456782"))
        .await
        .expect("jgz signal")
        .into_inner();
    let match_id = second.matches[0].match_id.clone();

    // the webhook: the match, signed, with the subscription's Authorization
    eventually("the webhook receives the match", || {
        let posts = posts.clone();
        async move {
            posts
                .lock()
                .unwrap()
                .iter()
                .any(|(_, body)| String::from_utf8_lossy(body).contains("signalling.matches"))
        }
    })
    .await;
    let (headers, body) = posts
        .lock()
        .unwrap()
        .iter()
        .find(|(_, body)| String::from_utf8_lossy(body).contains("signalling.matches"))
        .cloned()
        .unwrap();
    let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert!(webhook::verify(
        &secret,
        &header("webhook-id"),
        header("webhook-timestamp").parse().unwrap(),
        &body,
        &header("webhook-signature"),
    ));
    assert_eq!(header("authorization"), "Bearer receiver-key");
    let notificatie: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(notificatie["kanaal"], "signalling.matches");
    assert_eq!(notificatie["actie"], "create");
    assert!(
        notificatie["hoofdObject"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/signalling/v1/matches/{match_id}")),
        "{notificatie}"
    );
    assert_eq!(notificatie["kenmerken"]["kind"], "CLIENT");
    // no name, BSN or contact in it
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("123456782") && !text.contains("Noor") && !text.contains("Boer"));

    // the inbox
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let items = loop {
        let items = notifications
            .list_inbox(npb::ListInboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        if !items.is_empty() {
            break items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the school's inbox has the match"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(items[0].event.as_ref().unwrap().resource_id, match_id);
    let outsiders = outsider
        .list_inbox(npb::ListInboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(
        outsiders.is_empty(),
        "an organisation outside the match hears nothing"
    );
    suite.stop().await;
}

#[tokio::test]
async fn a_death_recorded_in_intake_destroys_the_childs_signals_in_signalling() {
    let suite = Harness::start().await.expect("suite starts");
    // signalling subscribes its EventSink when it starts
    eventually("signalling has subscribed", || {
        let pool = suite.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM notifications.subscriptions \
                 WHERE delivery = 'SERVICE' AND service_name = 'signalling' AND status = 'ACTIVE'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                >= 1
        }
    })
    .await;
    let child = register_child(&suite, "123456782").await;
    for org in [
        ("school-42", OrgType::School),
        ("ggd-jgz", OrgType::YouthHealth),
    ] {
        let token = suite.token(org.0, org.1, &[Role::Professional]);
        suite
            .signalling(&token)
            .unwrap()
            .register_signal(signal("123456782"))
            .await
            .expect("signal");
    }
    let signals = |pool: sqlx::PgPool, child: String| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM signalling.signals WHERE subject_id = $1::uuid",
        )
        .bind(child)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(signals(suite.pool.clone(), child.clone()).await, 2);

    let coordinator = suite.keys.token_in(
        "gm0363",
        OrgType::Municipality,
        &[Role::Coordinator],
        &["GM0363"],
    );
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    suite
        .intake(&coordinator)
        .unwrap()
        .update_subject(UpdateSubjectRequest {
            subject_id: child.clone(),
            subject: Some(IntakeSubject {
                date_of_death: yesterday,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["date_of_death".into()],
            }),
            request_id: "death".into(),
        })
        .await
        .expect("death recorded");

    eventually("signalling destroyed the child's signals", || {
        signals(suite.pool.clone(), child.clone()).map_zero()
    })
    .await;
    // the client match anchored at the child is gone with its signals
    let open_matches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM signalling.matches \
         WHERE anchor_subject_id = $1::uuid AND status = 'OPEN'",
    )
    .bind(&child)
    .fetch_one(&suite.pool)
    .await
    .unwrap();
    assert_eq!(open_matches, 0);
    let consumed: i64 = sqlx::query_scalar("SELECT count(*) FROM signalling.consumed_events")
        .fetch_one(&suite.pool)
        .await
        .unwrap();
    assert_eq!(consumed, 1, "signalling took the death once");
    let delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications.deliveries d JOIN notifications.events e USING (event_id) \
         WHERE e.action = 'deceased' AND d.status = 'DELIVERED'",
    )
    .fetch_one(&suite.pool)
    .await
    .unwrap();
    assert_eq!(delivered, 1);
    suite.stop().await;
}

trait MapZero {
    fn map_zero(self) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = i64>> MapZero for F {
    async fn map_zero(self) -> bool {
        self.await == 0
    }
}
