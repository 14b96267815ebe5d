//! The benchmark of issue "notifications" (run by `bench/notifications.sh`, not by the test
//! suite): Publish with fan-out to 10 webhook subscriptions on a loopback receiver, with the
//! service's own delivery workers; deliveries per second; commit-to-delivery latency at half
//! that load; and 1,000 concurrent StreamInbox streams (memory of the process and latency).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use zvv_proto::notifications::v1::{self as pb, create_subscription_request::Delivery};

use crate::helpers::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn fan_out(app: &TestApp, subscribers: usize) {
    let mut school = app.client(SCHOOL);
    app.receiver.set_mode(Mode::Accept);
    for _ in 0..subscribers {
        school
            .create_subscription(pb::CreateSubscriptionRequest {
                request_id: request_id(),
                channels: vec![channel("signalling.matches", &[])],
                delivery: Some(Delivery::Webhook(pb::WebhookDelivery {
                    url: app.receiver.url.clone(),
                    authorization: String::new(),
                })),
            })
            .await
            .expect("webhook subscription");
    }
}

/// Publishes `n` events from `concurrency` callers, at most `rate` per second (0: no limit);
/// returns when each was acknowledged, by event id.
async fn publish_many(
    app: &TestApp,
    n: usize,
    concurrency: usize,
    rate: f64,
) -> Vec<(String, Instant)> {
    let start = Instant::now();
    let clients: Vec<Client> = (0..concurrency)
        .map(|_| app.service("signalling"))
        .collect();
    futures::stream::iter((0..n).map(|i| {
        let mut client = clients[i % concurrency].clone();
        async move {
            if rate > 0.0 {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let e = match_event("CLIENT", &["school-1"]);
            let id = e.event_id.clone();
            client
                .publish(pb::PublishRequest { event: Some(e) })
                .await
                .expect("publish");
            (id, Instant::now())
        }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await
}

async fn wait_delivered(app: &TestApp, expected: usize, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let n = app.receiver.arrivals.lock().unwrap().len();
        if n >= expected || Instant::now() > deadline {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/notifications.sh"]
async fn notifications_benchmark() {
    let subscribers = 10;
    let events = 2_000;
    let app = TestApp::spawn_running().await;
    fan_out(&app, subscribers).await;

    // throughput: events published as fast as 16 callers can, each fanned out to 10 webhooks
    let start = Instant::now();
    publish_many(&app, events, 16, 0.0).await;
    let published = start.elapsed();
    let arrived_unique = {
        let end = wait_delivered(&app, events, Duration::from_secs(300)).await;
        end - start
    };
    let delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications.deliveries WHERE status = 'DELIVERED'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let all_delivered = {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notifications.deliveries WHERE status <> 'DELIVERED'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            if open == 0 || Instant::now() > deadline {
                break start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let total = (events * subscribers) as f64;
    let per_second = total / all_delivered.as_secs_f64();
    println!(
        "fan-out: {events} events x {subscribers} webhooks = {total} deliveries in {:.2} s: {per_second:.0} deliveries/s (publish took {:.2} s, {:.0} events/s; first arrival of every event id after {:.2} s; {delivered} DELIVERED when the ids had arrived)",
        all_delivered.as_secs_f64(),
        published.as_secs_f64(),
        events as f64 / published.as_secs_f64(),
        arrived_unique.as_secs_f64(),
    );

    // latency at half that load: commit (Publish answered) to the first arrival at a webhook
    app.receiver.arrivals.lock().unwrap().clear();
    let rate = per_second / subscribers as f64 / 2.0;
    let n = (rate * 10.0) as usize;
    let acked = publish_many(&app, n, 16, rate).await;
    wait_delivered(&app, n, Duration::from_secs(120)).await;
    let arrivals = app.receiver.arrivals.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = acked
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|a| a.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    println!(
        "latency at {rate:.0} events/s ({:.0} deliveries/s) for 10 s: commit to first delivery p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} of {n} measured)",
        rate * subscribers as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        latencies.len(),
    );

    pgbench_side(per_second).await;

    // 1,000 streams of 1,000 organisations (each its own inbox subscription), over 20
    // connections; one event for each organisation, latency from Publish to the item
    let streams = 1_000;
    let rss_before = rss_kib();
    let mut orgs = Vec::new();
    let channels: Vec<tonic::transport::Channel> = (0..20)
        .map(|_| {
            tonic::transport::Endpoint::from_shared(app.url.clone())
                .unwrap()
                .connect_lazy()
        })
        .collect();
    let mut receivers = Vec::new();
    for i in 0..streams {
        let org = format!("org-{i}");
        let token = app.keys.token(
            &org,
            zvv_platform::auth::OrgType::School,
            &[zvv_platform::auth::Role::Professional],
        );
        let mut client = zvv_proto::notifications::v1::notification_service_client::NotificationServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            move |mut req: tonic::Request<()>| {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                Ok(req)
            },
        );
        client
            .create_subscription(pb::CreateSubscriptionRequest {
                request_id: request_id(),
                channels: vec![channel("signalling.matches", &[])],
                delivery: Some(Delivery::Inbox(pb::InboxDelivery {})),
            })
            .await
            .expect("inbox subscription");
        let stream = client
            .stream_inbox(pb::StreamInboxRequest::default())
            .await
            .expect("stream")
            .into_inner();
        receivers.push(stream);
        orgs.push(org);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss_kib();
    let got = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let t0 = Instant::now();
    let mut readers = Vec::new();
    for mut stream in receivers {
        let got = got.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Some(pb::stream_inbox_response::Message::Item(_)) = message.message {
                    got.lock().unwrap().push(t0.elapsed());
                    return;
                }
            }
        }));
    }
    let mut service = app.service("signalling");
    let mut published_at = Vec::new();
    for org in &orgs {
        let mut e = match_event("CLIENT", &[org.as_str()]);
        e.audience.as_mut().unwrap().organisations = vec![org.clone()];
        service
            .publish(pb::PublishRequest { event: Some(e) })
            .await
            .expect("publish");
        published_at.push(t0.elapsed());
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(60), r).await;
    }
    let rss_after = rss_kib();
    let mut arrived = got.lock().unwrap().clone();
    arrived.sort();
    // each organisation's item was published at published_at[i]; pair the sorted arrival
    // times with the sorted publish times for a latency estimate
    let mut lat: Vec<Duration> = arrived
        .iter()
        .zip(published_at.iter())
        .map(|(a, p)| a.saturating_sub(*p))
        .collect();
    lat.sort();
    println!(
        "streams: {streams} open over 20 connections; process RSS {} MiB before, {} MiB with them open (+{} MiB, the clients' side included), {} MiB after one item each; {} of {streams} got their item, publish to item p50 {:.0} ms, p99 {:.0} ms",
        rss_before / 1024,
        rss_open / 1024,
        rss_open.saturating_sub(rss_before) / 1024,
        rss_after / 1024,
        arrived.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
    );
}

/// The same SQL with pgbench, on a database of its own with the same 10 subscriptions: a warm-up
/// of 3 s, then 10 s with 16 clients.
async fn pgbench_side(grpc_per_second: f64) {
    let db = zvv_devkit::testkit::TestDb::create()
        .await
        .expect("database");
    let pool = zvv_platform::db::connect(db.options.clone(), &Default::default())
        .await
        .unwrap();
    zvv_notifications::migrate(&pool).await.unwrap();
    for i in 0..10 {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO notifications.subscriptions (subscription_id, organisation, \
             organisation_type, created_by, creator_roles, municipalities, delivery, webhook_url, \
             secret_sealed, status, created_at) VALUES ($1, 'school-1', 'SCHOOL', $2, \
             '{PROFESSIONAL}', '{}', 'WEBHOOK', 'http://127.0.0.1:9/hook', '\\x00', 'ACTIVE', now())",
        )
        .bind(id)
        .bind(format!("user-{i}"))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO notifications.subscription_channels VALUES ($1, 'signalling.matches', '{}')",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/notifications-fanout.sql"
    );
    let run = |seconds: &str| {
        std::process::Command::new("pgbench")
            .args([
                "-n", "-c", "16", "-j", "2", "-T", seconds, "-f", script, &db.url,
            ])
            .output()
    };
    let Ok(warm) = run("3") else {
        println!("pgbench: not found (install the PostgreSQL client)");
        return;
    };
    if !warm.status.success() {
        println!("pgbench failed: {}", String::from_utf8_lossy(&warm.stderr));
        return;
    }
    let out = run("10").expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    let tps: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .unwrap_or("")
        .to_owned();
    println!(
        "pgbench of the same SQL (16 clients, 10 s after 3 s): {tps:.0} events/s = {:.0} deliveries/s ({latency}); gRPC/pgbench {:.2}",
        tps * 10.0,
        grpc_per_second / (tps * 10.0).max(1.0)
    );
    pool.close().await;
}
