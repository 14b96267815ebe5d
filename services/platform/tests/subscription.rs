//! A service keeps its EventSink subscribed: against a stand-in NotificationService on loopback
//! that keeps subscriptions per calling token, one subscription however often and from however
//! many replicas it is ensured, and a new one when it was deleted.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{Arc, Mutex},
};

use secrecy::SecretString;
use tonic::{Request, Response, Status};
use zvv_platform::{
    client::TokenSource,
    relay::NotificationsClient,
    sink::{self, Wanted},
};
use zvv_proto::notifications::v1::{
    self as nb,
    notification_service_server::{NotificationService, NotificationServiceServer},
};

#[derive(Default)]
struct Stand {
    /// request id → subscription (creations are idempotent by request id)
    by_request: Mutex<BTreeMap<String, nb::Subscription>>,
    deleted: Mutex<Vec<String>>,
    creations: Mutex<u32>,
}

impl Stand {
    fn live(&self) -> Vec<nb::Subscription> {
        let deleted = self.deleted.lock().unwrap().clone();
        self.by_request
            .lock()
            .unwrap()
            .values()
            .filter(|s| !deleted.contains(&s.subscription_id))
            .cloned()
            .collect()
    }
}

struct Api(Arc<Stand>);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this stand-in"))
}

#[tonic::async_trait]
impl NotificationService for Api {
    async fn publish(
        &self,
        _: Request<nb::PublishRequest>,
    ) -> Result<Response<nb::PublishResponse>, Status> {
        unimplemented()
    }
    async fn list_channels(
        &self,
        _: Request<nb::ListChannelsRequest>,
    ) -> Result<Response<nb::ListChannelsResponse>, Status> {
        unimplemented()
    }
    async fn create_subscription(
        &self,
        request: Request<nb::CreateSubscriptionRequest>,
    ) -> Result<Response<nb::CreateSubscriptionResponse>, Status> {
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer token-for-notifications"
        );
        let r = request.into_inner();
        let mut by_request = self.0.by_request.lock().unwrap();
        if !by_request.contains_key(&r.request_id) {
            *self.0.creations.lock().unwrap() += 1;
        }
        let made = by_request
            .entry(r.request_id.clone())
            .or_insert_with(|| nb::Subscription {
                subscription_id: uuid::Uuid::now_v7().to_string(),
                organisation: "zvv-signalling".into(),
                channels: r.channels.clone(),
                delivery: r.delivery.map(|d| match d {
                    nb::create_subscription_request::Delivery::Service(s) => {
                        nb::subscription::Delivery::Service(s)
                    }
                    _ => panic!("a service delivery"),
                }),
                status: nb::SubscriptionStatus::Active as i32,
                ..Default::default()
            })
            .clone();
        Ok(Response::new(nb::CreateSubscriptionResponse {
            subscription: Some(made),
            signing_secret: String::new(),
        }))
    }
    async fn get_subscription(
        &self,
        _: Request<nb::GetSubscriptionRequest>,
    ) -> Result<Response<nb::GetSubscriptionResponse>, Status> {
        unimplemented()
    }
    async fn list_subscriptions(
        &self,
        _: Request<nb::ListSubscriptionsRequest>,
    ) -> Result<Response<nb::ListSubscriptionsResponse>, Status> {
        Ok(Response::new(nb::ListSubscriptionsResponse {
            subscriptions: self.0.live(),
            next_page_token: String::new(),
        }))
    }
    async fn delete_subscription(
        &self,
        _: Request<nb::DeleteSubscriptionRequest>,
    ) -> Result<Response<nb::DeleteSubscriptionResponse>, Status> {
        unimplemented()
    }
    async fn list_inbox(
        &self,
        _: Request<nb::ListInboxRequest>,
    ) -> Result<Response<nb::ListInboxResponse>, Status> {
        unimplemented()
    }
    async fn mark_read(
        &self,
        _: Request<nb::MarkReadRequest>,
    ) -> Result<Response<nb::MarkReadResponse>, Status> {
        unimplemented()
    }
    type StreamInboxStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<nb::StreamInboxResponse, Status>> + Send>>;
    async fn stream_inbox(
        &self,
        _: Request<nb::StreamInboxRequest>,
    ) -> Result<Response<Self::StreamInboxStream>, Status> {
        unimplemented()
    }
    async fn list_deliveries(
        &self,
        _: Request<nb::ListDeliveriesRequest>,
    ) -> Result<Response<nb::ListDeliveriesResponse>, Status> {
        unimplemented()
    }
    async fn redeliver(
        &self,
        _: Request<nb::RedeliverRequest>,
    ) -> Result<Response<nb::RedeliverResponse>, Status> {
        unimplemented()
    }
}

static CHANNELS: &[Wanted] = &[
    Wanted {
        channel: "intake.subjects",
        filters: &[("action", "deceased")],
    },
    Wanted {
        channel: "intake.relations",
        filters: &[],
    },
];

#[tokio::test]
async fn one_subscription_however_often_it_is_ensured() {
    let stand = Arc::new(Stand::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NotificationServiceServer::new(Api(stand.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let client = NotificationsClient::new(
        zvv_platform::client::channel(
            &url,
            TokenSource::Static(SecretString::from("token-for-notifications")),
        )
        .unwrap(),
    );

    // replicas starting together
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let mut client = client.clone();
        replicas.push(tokio::spawn(async move {
            sink::ensure_subscription(&mut client, "signalling", CHANNELS).await
        }));
    }
    let mut ids = Vec::new();
    for r in replicas {
        ids.push(r.await.unwrap().expect("subscribed"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let live = stand.live();
    assert_eq!(live.len(), 1);
    let s = &live[0];
    assert!(matches!(
        &s.delivery,
        Some(nb::subscription::Delivery::Service(d)) if d.name == "signalling"
    ));
    assert_eq!(s.channels.len(), 2);
    assert_eq!(s.channels[0].channel, "intake.subjects");
    assert_eq!(s.channels[0].filters["action"], "deceased");

    // again later: found, nothing created
    let again = sink::ensure_subscription(&mut client.clone(), "signalling", CHANNELS)
        .await
        .unwrap();
    assert_eq!(again, ids[0]);
    assert_eq!(*stand.creations.lock().unwrap(), 1);

    // deleted by mistake: the job subscribes again (here with a new request id, as after the
    // idempotency retention of notifications)
    stand.deleted.lock().unwrap().push(ids[0].clone());
    stand.by_request.lock().unwrap().clear();
    let job = sink::keep_subscribed(
        client.clone(),
        "signalling",
        CHANNELS,
        std::time::Duration::from_millis(20),
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while stand.live().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "subscribed again");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(job);
    server.abort();
}
