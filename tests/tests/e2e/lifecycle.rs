use std::time::{Duration, Instant};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use zvv_e2e::Harness;
use zvv_platform::server::ServerSettings;

async fn health(url: &str, service: &str) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = HealthClient::new(channel);
    Ok(client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner()
        .status)
}

/// On shutdown the services first report NOT_SERVING (while still answering), and only after
/// the configured delay stop listening.
#[tokio::test]
async fn shutdown_reports_not_serving_before_it_stops_listening() {
    let suite = Harness::start_with(ServerSettings {
        shutdown_delay: Duration::from_millis(1500),
        ..ServerSettings::default()
    })
    .await
    .expect("suite starts");
    let url = suite.intake_url.clone();
    for service in ["", "zvv.intake.v1.SubjectService"] {
        assert_eq!(
            health(&url, service).await.unwrap(),
            ServingStatus::Serving as i32
        );
    }

    let asked = Instant::now();
    suite.begin_shutdown();
    let mut saw_not_serving = false;
    while asked.elapsed() < Duration::from_millis(1200) {
        if health(&url, "zvv.intake.v1.SubjectService").await.ok()
            == Some(ServingStatus::NotServing as i32)
        {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        saw_not_serving,
        "NOT_SERVING is reported during the shutdown delay"
    );
    suite.stop().await;
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "the listener stays open for the whole delay"
    );
    assert!(
        health(&url, "").await.is_err(),
        "nothing answers after shutdown"
    );
}
