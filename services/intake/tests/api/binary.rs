//! The `zvv-intake` binary as it runs in a deployment: configured from the environment only,
//! exporting spans to an OTLP collector that is down, and stopping cleanly on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use secrecy::SecretString;
use tonic::Code;
use zvv_devkit::testkit::{ISSUER, TestDb, TestKeys};
use zvv_platform::{
    auth::{OrgType, Role},
    client::{TokenSource, channel},
};
use zvv_proto::intake::v1::{GetSubjectRequest, subject_service_client::SubjectServiceClient};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn the_binary_serves_with_the_collector_down_and_stops_on_sigterm() {
    let db = TestDb::create().await.expect("database");
    let keys = TestKeys::new().expect("keys");
    let bsn_keys = keys.dir.path().join("bsn-keys.json");
    std::fs::write(
        &bsn_keys,
        serde_json::to_string(&keys.bsn_keys).expect("json"),
    )
    .expect("write keys");
    let port = free_port();
    let collector = free_port(); // nothing listens there

    let mut child = Command::new(env!("CARGO_BIN_EXE_zvv-intake"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("ZVV_BSN_KEYS_FILE", &bsn_keys)
        .env("ZVV_JWT_PUBLIC_KEY_FILE", &keys.public_key_path)
        .env("ZVV_JWT_ISSUER", ISSUER)
        .env("ZVV_INTAKE_LISTEN", format!("127.0.0.1:{port}"))
        .env("ZVV_LOG_FORMAT", "json")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{collector}"),
        )
        .env("OTEL_SERVICE_NAME", "intake-under-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zvv-intake");

    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().expect("poll child") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "zvv-intake exited early with {status}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "zvv-intake did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let token = keys.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let ch = channel(
        &format!("http://127.0.0.1:{port}"),
        TokenSource::Static(SecretString::from(token)),
    )
    .expect("channel");
    let mut client = SubjectServiceClient::new(ch);
    for _ in 0..20 {
        let status = client
            .get_subject(GetSubjectRequest {
                subject_id: uuid::Uuid::now_v7().to_string(),
            })
            .await
            .expect_err("unknown subject");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "zvv-intake did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "exit {status}: {log}");
    assert!(
        log.contains("exporting spans and metrics over OTLP"),
        "{log}"
    );
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("\"level\":\"INFO\""), "json log lines: {log}");
    assert!(!log.contains(&db.url), "no database URL in the log");
}
