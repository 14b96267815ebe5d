//! TLS over loopback with certificates made in the test: a server in the platform's frame
//! (`server::serve`, health and the call layer over one TLS listener) called with the
//! platform's client; plaintext and untrusted callers refused; mutual TLS; and certificates
//! renewed in place, on the server and on the client.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::SecretString;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use zvv_devkit::{
    testkit::{TestDb, TestKeys, service_pool},
    tls::{LOOPBACK_NAMES, TestCa, TestPki, replace_file},
};
use zvv_platform::{
    client::{self, TokenSource},
    clock::SystemClock,
    db::Schema,
    layer::CallLayer,
    policy::PolicySet,
    server::{self, ServerSettings},
    tls::{ClientTls, ClientTlsFiles, ServerTls},
};
use zvv_proto::intake::v1::{GetSubjectRequest, subject_service_client::SubjectServiceClient};

const SCHEMA: Schema = Schema::new("tlstest");
const RELOAD: Duration = Duration::from_millis(100);
/// Long enough for the next connection to see a renewal.
const PAST_RELOAD: Duration = Duration::from_millis(300);

struct Served {
    addr: SocketAddr,
    pool: sqlx::PgPool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _db: TestDb,
}

impl Served {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.await.unwrap().expect("served");
    }
}

/// The platform's server frame with `tls`, serving health and reflection (and refusing every
/// other call in its call layer).
async fn serve(tls: ServerTls) -> Served {
    serve_with(tls, None).await
}

/// [`serve`], with a plaintext health-only listener on `health_listen`.
async fn serve_with(tls: ServerTls, health_listen: Option<SocketAddr>) -> Served {
    let db = TestDb::create().await.expect("test database");
    let (pool, _) = service_pool(&db, SCHEMA, 4, |owner| async move {
        zvv_platform::db::migrate(
            &owner,
            SCHEMA,
            sqlx::migrate::Migrator::with_migrations(vec![]),
        )
        .await
    })
    .await
    .expect("migrated pool");
    let keys = TestKeys::new().expect("keys");
    let settings = ServerSettings {
        tls: Some(tls),
        health_listen,
        ..ServerSettings::default()
    };
    let layer = CallLayer::new(
        keys.verifier(SCHEMA.name()).expect("verifier"),
        PolicySet(&[]),
        pool.clone(),
        SCHEMA,
        Arc::new(SystemClock),
        &settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve(
            listener,
            tonic::service::Routes::default(),
            &[],
            layer,
            &settings,
            async move {
                let _ = stopped.await;
            },
        )
        .await
    });
    Served {
        addr,
        pool,
        stop: Some(stop),
        task,
        _db: db,
    }
}

fn token() -> TokenSource {
    TokenSource::Static(SecretString::from("not-a-token"))
}

/// A health check over a new channel to `url`.
async fn check(url: &str, tls: &ClientTls) -> Result<(), tonic::Status> {
    let channel = client::channel_with(url, token(), tls).expect("channel");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
}

/// A call that failed in the transport (the connection or its handshake), with the cause: a
/// plaintext client may also read the server's TLS alert as a broken HTTP/2 frame (INTERNAL).
fn refused(result: Result<(), tonic::Status>) -> String {
    let err = result.expect_err("refused");
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        "{err:?}"
    );
    format!("{err:?}")
}

fn client_tls(files: ClientTlsFiles) -> ClientTls {
    ClientTls::from_files(files).expect("client tls")
}

/// The leaf certificate the server at `addr` presents to a client trusting `tls`.
async fn presented(addr: SocketAddr, tls: &ClientTls) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.config().unwrap())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("handshake");
    let (_, session) = stream.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    session.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn services_call_each_other_over_tls_and_others_are_refused() {
    let pki = TestPki::new("zvv test CA").unwrap();
    let served = serve(ServerTls::from_files(pki.server_files(false, RELOAD)).unwrap()).await;
    let trusted = client_tls(pki.client_files(false));

    check(&served.url(), &trusted)
        .await
        .expect("health over tls");
    let by_name = format!("https://localhost:{}", served.addr.port());
    check(&by_name, &trusted)
        .await
        .expect("health over tls by host name");

    // a call past health reaches the call layer over TLS, which sees the caller's address
    let channel = client::channel_with(&served.url(), token(), &trusted).unwrap();
    let unauthenticated = SubjectServiceClient::new(channel)
        .get_subject(GetSubjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        unauthenticated.code(),
        Code::Unauthenticated,
        "{unauthenticated:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let peers = loop {
        let peers: Vec<String> = sqlx::query_scalar("SELECT peer FROM tlstest.audit_log")
            .fetch_all(&served.pool)
            .await
            .unwrap();
        if !peers.is_empty() || tokio::time::Instant::now() > deadline {
            break peers;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(peers[0].starts_with("127.0.0.1:"), "{peers:?}");

    // plaintext to a TLS listener
    let plain = format!("http://{}", served.addr);
    refused(check(&plain, &trusted).await);
    // a caller trusting another CA, or only the system's roots
    let other = TestPki::new("another CA").unwrap();
    let why = refused(check(&served.url(), &client_tls(other.client_files(false))).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
    refused(check(&served.url(), &ClientTls::system()).await);
    // a server certificate that does not name the address
    let misnamed = pki.ca.server(&["intake.example"]).unwrap();
    misnamed
        .write(&pki.server_cert_file, &pki.server_key_file)
        .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    let why = refused(check(&served.url(), &trusted).await);
    assert!(why.contains("NotValidForName"), "{why}");

    // still TLS, and still serving, after all of that
    pki.server
        .write(&pki.server_cert_file, &pki.server_key_file)
        .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    check(&served.url(), &trusted).await.expect("health again");

    // what a service binary does: the process's TLS, used by every `client::channel`
    let before = client::channel(&served.url(), token()).unwrap();
    client::configure_tls(trusted.clone());
    let after = client::channel(&served.url(), token()).unwrap();
    refused(
        HealthClient::new(before)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ()),
    );
    HealthClient::new(after)
        .check(HealthCheckRequest::default())
        .await
        .expect("with the configured TLS");
    served.stop().await;
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_of_the_ca() {
    let pki = TestPki::new("zvv test CA").unwrap();
    let served = serve(ServerTls::from_files(pki.server_files(true, RELOAD)).unwrap()).await;

    let why = refused(check(&served.url(), &client_tls(pki.client_files(false))).await);
    assert!(why.contains("CertificateRequired"), "{why}");

    // a client certificate of another CA
    let other = TestCa::new("another CA").unwrap();
    let stranger = other.client("zvv-stranger").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    stranger.write(&cert, &key).unwrap();
    let stranger = client_tls(ClientTlsFiles {
        ca_file: Some(pki.ca_file.clone()),
        cert_file: Some(cert),
        key_file: Some(key),
        ..ClientTlsFiles::default()
    });
    let why = refused(check(&served.url(), &stranger).await);
    assert!(
        why.contains("UnknownCA") || why.contains("BadCertificate"),
        "{why}"
    );

    check(&served.url(), &client_tls(pki.client_files(true)))
        .await
        .expect("with the client certificate");
    served.stop().await;
}

#[tokio::test]
async fn renewed_certificates_are_taken_by_new_connections() {
    let pki = TestPki::new("zvv test CA").unwrap();
    let served = serve(ServerTls::from_files(pki.server_files(false, RELOAD)).unwrap()).await;
    let trusted = client_tls(pki.client_files(false));
    assert_eq!(presented(served.addr, &trusted).await, pki.server.der);
    // a channel connected before the renewal
    let early = client::channel_with(&served.url(), token(), &trusted).unwrap();
    let mut early = HealthClient::new(early);
    early.check(HealthCheckRequest::default()).await.unwrap();

    // renewed by the same CA: another key, serial and name
    let renewed = pki.ca.server(&["127.0.0.1", "localhost"]).unwrap();
    assert_ne!(renewed.der, pki.server.der);
    renewed
        .write(&pki.server_cert_file, &pki.server_key_file)
        .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    assert_eq!(presented(served.addr, &trusted).await, renewed.der);
    early
        .check(HealthCheckRequest::default())
        .await
        .expect("an open connection carries on");

    // a renewal seen half-way (a certificate without its key) and a broken file: the last
    // good certificate stays
    let half = pki.ca.server(LOOPBACK_NAMES).unwrap();
    replace_file(&pki.server_cert_file, &half.cert_pem).unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    assert_eq!(presented(served.addr, &trusted).await, renewed.der);
    replace_file(
        &pki.server_cert_file,
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    assert_eq!(presented(served.addr, &trusted).await, renewed.der);
    half.write(&pki.server_cert_file, &pki.server_key_file)
        .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    assert_eq!(presented(served.addr, &trusted).await, half.der);

    // a new CA: a caller whose (reloading) bundle holds only the old one fails, one that
    // trusts only the new one succeeds; once the caller's bundle is renewed too, it succeeds
    let caller_dir = tempfile::tempdir().unwrap();
    let caller_ca = caller_dir.path().join("ca.crt");
    replace_file(&caller_ca, &pki.ca.cert_pem()).unwrap();
    let caller = client_tls(ClientTlsFiles {
        ca_file: Some(caller_ca.clone()),
        reload_interval: RELOAD,
        ..ClientTlsFiles::default()
    });
    check(&served.url(), &caller).await.expect("old CA");
    let next = TestPki::new("next CA").unwrap();
    next.server
        .write(&pki.server_cert_file, &pki.server_key_file)
        .unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    refused(check(&served.url(), &trusted).await);
    refused(check(&served.url(), &caller).await);
    let only_next = client_tls(next.client_files(false));
    check(&served.url(), &only_next).await.expect("new CA");
    assert_eq!(presented(served.addr, &only_next).await, next.server.der);
    replace_file(&caller_ca, &next.ca.cert_pem()).unwrap();
    tokio::time::sleep(PAST_RELOAD).await;
    check(&served.url(), &caller)
        .await
        .expect("the caller's renewed bundle");
    served.stop().await;
}

#[tokio::test]
async fn a_plaintext_health_only_port_serves_probes_beside_tls() {
    let pki = TestPki::new("zvv test CA").unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let health_addr = free.local_addr().unwrap();
    drop(free);
    let served = serve_with(
        ServerTls::from_files(pki.server_files(false, RELOAD)).unwrap(),
        Some(health_addr),
    )
    .await;
    let plain = |addr: SocketAddr| async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect()
            .await?;
        Ok::<_, tonic::transport::Error>(channel)
    };
    // the probe's port: plaintext health, the same status as the TLS listener
    let mut status = None;
    for _ in 0..50 {
        if let Ok(channel) = plain(health_addr).await {
            status = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .ok()
                .map(|r| r.into_inner().status);
            if status.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    );
    // and nothing else there: the services are on the TLS listener only
    let channel = plain(health_addr).await.expect("health port");
    let other = SubjectServiceClient::new(channel)
        .get_subject(GetSubjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::Unimplemented, "{other:?}");
    // the main listener still refuses plaintext
    let refused = match plain(served.addr).await {
        Err(_) => true,
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "plaintext on the TLS listener");
    served.stop().await;
}
