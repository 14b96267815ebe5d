//! The request fingerprint key against signalling's database: recorded on first start, another
//! key refused with the expected key id named.

use zvv_platform::{idempotency::FingerprintKey, keys::KeyCheckError};

use crate::helpers::{SCHOOL, TestApp, valid_bsn};

async fn records(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT purpose, key_id FROM signalling.service_keys ORDER BY purpose, key_id")
        .fetch_all(&app.pool)
        .await
        .expect("key records")
}

fn other_key() -> FingerprintKey {
    FingerprintKey::from_base64(&FingerprintKey::generate_base64()).expect("key")
}

#[tokio::test]
async fn the_fingerprint_key_is_recorded_and_another_one_is_refused() {
    let app = TestApp::spawn().await;
    assert_eq!(
        records(&app).await,
        [("request-fingerprint".to_owned(), "fingerprint-1".to_owned())]
    );
    let child = app.child(&valid_bsn(1)).await;
    app.signal(SCHOOL, &child).await;

    // the same key again (a restart), as the runtime role
    let key = app.keys.fingerprints().expect("key");
    zvv_signalling::check_keys(&app.runtime_pool, &key)
        .await
        .expect("the same key");

    let err = zvv_signalling::check_keys(&app.runtime_pool, &other_key())
        .await
        .expect_err("another key");
    assert!(matches!(err, KeyCheckError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    for part in [
        "request-fingerprint key \"fingerprint-1\" is not the key recorded under that id",
        "expected (recorded in signalling.service_keys): request-fingerprint \"fingerprint-1\"",
        "Restore the key file",
    ] {
        assert!(message.contains(part), "{part:?} in:\n{message}");
    }
    assert_eq!(records(&app).await.len(), 1, "nothing recorded");
}

#[tokio::test]
async fn a_database_from_before_the_records_takes_its_key_only_once() {
    let app = TestApp::spawn().await;
    let child = app.child(&valid_bsn(2)).await;
    app.signal(SCHOOL, &child).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM signalling.idempotency")
        .fetch_one(&app.pool)
        .await
        .expect("idempotency keys");
    assert!(stored > 0, "the signal left an idempotency key");
    sqlx::query("DELETE FROM signalling.service_keys")
        .execute(&app.pool)
        .await
        .expect("no records");
    // stored idempotency keys cannot be checked against a key: it is recorded (with a warning),
    // and from then on no other key is accepted
    let key = app.keys.fingerprints().expect("key");
    zvv_signalling::check_keys(&app.runtime_pool, &key)
        .await
        .expect("recorded");
    assert_eq!(records(&app).await.len(), 1);
    zvv_signalling::check_keys(&app.runtime_pool, &other_key())
        .await
        .expect_err("another key after that");
}
