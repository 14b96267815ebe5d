//! Two services over mutual TLS with certificates made in the test: intake serves TLS only and
//! requires client certificates of the suite's CA; signalling calls it at an `https://` address
//! with its client certificate, so a signal registered by BSN reaches intake. A signalling whose
//! intake client presents no certificate gets no answer from intake, and a plaintext caller is
//! refused.

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;
use tokio::net::TcpListener;
use tonic::Code;
use zvv_devkit::{
    testkit::{TestDb, TestKeys, service_pool, valid_bsn},
    tls::TestPki,
};
use zvv_platform::{
    auth::{OrgType, Role},
    client::{self, TokenSource},
    clock::{SharedClock, SystemClock},
    server::ServerSettings,
    tls::{ClientTls, ServerTls},
};
use zvv_proto::{
    intake::v1::{
        GetSubjectRequest, RegisterSubjectRequest, subject_service_client::SubjectServiceClient,
    },
    signalling::v1::{
        Contact, RegisterSignalRequest, register_signal_request::Subject,
        signal_service_client::SignalServiceClient,
    },
};

type Stop = tokio::sync::oneshot::Sender<()>;

/// Starts signalling against `db`, calling intake at `intake_url` with `tls`; returns its
/// address and the sender that stops it.
async fn signalling(
    db: &TestDb,
    keys: &TestKeys,
    intake_url: &str,
    tls: &ClientTls,
    clock: SharedClock,
) -> (String, Stop) {
    let (pool, _) = service_pool(db, zvv_signalling::SCHEMA, 4, |owner| async move {
        zvv_signalling::migrate(&owner).await
    })
    .await
    .expect("signalling pool");
    let fingerprints = keys.fingerprints().expect("fingerprints");
    zvv_signalling::check_keys(&pool, &fingerprints)
        .await
        .expect("signalling keys");
    let intake = SubjectServiceClient::new(
        client::channel_with(
            intake_url,
            TokenSource::Static(SecretString::from(
                keys.service_token("zvv-signalling", zvv_intake::SCHEMA.name()),
            )),
            tls,
        )
        .expect("intake channel"),
    );
    let deps = zvv_signalling::Deps {
        pool,
        verifier: keys
            .verifier(zvv_signalling::SCHEMA.name())
            .expect("verifier"),
        clock,
        settings: ServerSettings::default(),
        intake,
        default_duration_months: 12,
        idempotency_retention: chrono::Duration::hours(24),
        referral_deadline_working_days: zvv_signalling::DEFAULT_REFERRAL_DEADLINE_WORKING_DAYS,
        statistics_threshold: zvv_signalling::DEFAULT_STATISTICS_THRESHOLD,
        fingerprints,
        retention: zvv_signalling::retention::RetentionRules::default(),
        relay: None,
        notifications: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(zvv_signalling::serve(deps, listener, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

fn register(bsn: &str) -> RegisterSignalRequest {
    RegisterSignalRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        subject: Some(Subject::Bsn(bsn.to_owned())),
        contact: Some(Contact {
            name: "Mw. de Boer".into(),
            phone: "+31 20 555 0101".into(),
            email: "boer@school.nl".into(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn signalling_calls_intake_over_mutual_tls() {
    let db = TestDb::create().await.expect("test database");
    let keys = TestKeys::new().expect("keys");
    let pki = TestPki::new("zvv suite CA").expect("a CA");
    let clock: SharedClock = Arc::new(SystemClock);

    // intake: TLS only, client certificates of the suite's CA required
    let (intake_pool, _) = service_pool(&db, zvv_intake::SCHEMA, 4, |owner| async move {
        zvv_intake::migrate(&owner).await
    })
    .await
    .expect("intake pool");
    zvv_intake::check_keys(&intake_pool, &keys.vault().expect("vault"))
        .await
        .expect("intake keys");
    let tls = ServerTls::from_files(pki.server_files(true, Duration::from_secs(5)))
        .expect("intake's certificate");
    let deps = zvv_intake::Deps {
        pool: intake_pool,
        vault: keys.vault().expect("vault"),
        verifier: keys.verifier(zvv_intake::SCHEMA.name()).expect("verifier"),
        clock: clock.clone(),
        settings: ServerSettings {
            tls: Some(tls),
            ..ServerSettings::default()
        },
        idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
        relay: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop_intake, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(zvv_intake::serve(deps, listener, async move {
        let _ = stopped.await;
    }));
    let intake_url = format!("https://localhost:{port}");

    // a municipality registers the child, over TLS with a client certificate too
    let with_cert = ClientTls::from_files(pki.client_files(true)).expect("client tls");
    let municipality = keys.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let mut intake = SubjectServiceClient::new(
        client::channel_with(
            &intake_url,
            TokenSource::Static(SecretString::from(municipality)),
            &with_cert,
        )
        .expect("intake channel"),
    );
    let mut subject_id = None;
    for _ in 0..50 {
        match intake
            .register_subject(RegisterSubjectRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                bsn: valid_bsn(1),
                given_name: "Sanne".into(),
                family_name: "de Vries".into(),
                birth_date: "2015-03-14".into(),
                municipality_code: "GM0363".into(),
                neighbourhood_code: "WK036305".into(),
            })
            .await
        {
            Ok(r) => {
                subject_id = r.into_inner().subject.map(|s| s.subject_id);
                break;
            }
            // intake may still be starting
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("register the child over tls: {s:?}"),
        }
    }
    let subject_id = subject_id.expect("registered in intake");

    // signalling with its client certificate: a signal by BSN is resolved by intake over TLS
    let (url, stop_signalling) =
        signalling(&db, &keys, &intake_url, &with_cert, clock.clone()).await;
    let school = keys.token("school-1", OrgType::School, &[Role::Professional]);
    let mut signals = SignalServiceClient::new(
        client::channel(
            &url,
            TokenSource::Static(SecretString::from(school.clone())),
        )
        .expect("channel"),
    );
    let mut registered = None;
    for _ in 0..50 {
        match signals.register_signal(register(&valid_bsn(1))).await {
            Ok(r) => {
                registered = Some(r.into_inner());
                break;
            }
            // the servers may still be starting
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("register over tls: {s:?}"),
        }
    }
    let signal = registered.expect("registered").signal.expect("signal");
    assert_eq!(signal.subject_id, subject_id, "intake resolved the BSN");

    // a signalling whose intake client presents no certificate: intake does not answer it
    let without_cert = ClientTls::from_files(pki.client_files(false)).expect("client tls");
    // (another database: a signalling of its own)
    let other_db = TestDb::create().await.expect("test database");
    let (url, stop_other) = signalling(&other_db, &keys, &intake_url, &without_cert, clock).await;
    let mut signals = SignalServiceClient::new(
        client::channel(&url, TokenSource::Static(SecretString::from(school))).expect("channel"),
    );
    let mut refused = None;
    for _ in 0..50 {
        match signals.register_signal(register(&valid_bsn(1))).await {
            Err(s) if s.code() == Code::Unavailable && s.message().contains("intake") => {
                refused = Some(s);
                break;
            }
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("without a client certificate: {other:?}"),
        }
    }
    assert!(
        refused.is_some(),
        "intake refuses a caller without a certificate"
    );

    // and a plaintext caller gets nothing from intake
    let plain = SubjectServiceClient::new(
        client::channel(
            &format!("http://127.0.0.1:{port}"),
            TokenSource::Static(SecretString::from(
                keys.service_token("zvv-signalling", zvv_intake::SCHEMA.name()),
            )),
        )
        .expect("channel"),
    )
    .get_subject(GetSubjectRequest {
        subject_id: signal.subject_id.clone(),
    })
    .await;
    assert!(plain.is_err(), "plaintext to a TLS listener");

    let _ = stop_other.send(());
    let _ = stop_signalling.send(());
    let _ = stop_intake.send(());
}
