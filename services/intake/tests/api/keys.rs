//! Intake's keys against its database: the keys are recorded on first start and a start with
//! other keys is refused (naming the expected key ids), a rotation key is recorded and old rows
//! stay readable, re-encryption moves every row to the active key, and a BSN ciphertext copied
//! onto another subject does not open there.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::Code;
use uuid::Uuid;
use zvv_devkit::testkit::TestDb;
use zvv_platform::{
    bsn::{BsnVault, KeyFile},
    client::TokenSource,
    db::PoolSettings,
    keys::KeyCheckError,
};
use zvv_proto::intake::v1::{self as pb, subject_service_client::SubjectServiceClient};

use crate::helpers::{BSN, Client, TestApp, action, expect_err, valid_bsn};

/// The check value of a key, computed here independently: HMAC-SHA256(key, "zvv.key-check.v1\0").
fn check_value(key_b64: &str) -> Vec<u8> {
    let key = STANDARD.decode(key_b64).expect("base64 key");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("hmac key");
    mac.update(b"zvv.key-check.v1\0");
    mac.finalize().into_bytes().to_vec()
}

fn vault(keys: &KeyFile) -> BsnVault {
    BsnVault::from_key_file(keys).expect("vault")
}

/// The app's key file with a second encryption key `dev-2` made active.
fn rotated(app: &TestApp) -> KeyFile {
    let mut keys = app.keys.bsn_keys.clone();
    keys.encryption_keys
        .insert("dev-2".into(), KeyFile::generate_encryption_key());
    keys.active_key_id = "dev-2".into();
    keys
}

/// (purpose, key_id, check_value) as recorded, in order.
async fn records(pool: &PgPool) -> Vec<(String, String, Vec<u8>)> {
    sqlx::query_as(
        "SELECT purpose, key_id, check_value FROM intake.service_keys ORDER BY purpose, key_id",
    )
    .fetch_all(pool)
    .await
    .expect("key records")
}

async fn refused(pool: &PgPool, keys: &KeyFile) -> String {
    match zvv_intake::check_keys(pool, &vault(keys)).await {
        Ok(()) => panic!("the key check accepted keys it must refuse"),
        Err(e @ KeyCheckError::Refused { .. }) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

/// The runtime role's pool, as the service uses it.
async fn runtime_pool(app: &TestApp) -> PgPool {
    zvv_platform::db::connect(
        app.roles.runtime.clone(),
        &PoolSettings {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .await
    .expect("runtime pool")
}

/// A second intake server on the app's database with other keys (as after a restart with a new
/// key file); stops when the sender is dropped.
async fn serve_with(app: &TestApp, keys: &KeyFile) -> (Client, oneshot::Sender<()>) {
    let deps = zvv_intake::Deps {
        pool: runtime_pool(app).await,
        vault: Arc::new(vault(keys)),
        verifier: app
            .keys
            .verifier(zvv_intake::SCHEMA.name())
            .expect("verifier"),
        clock: Arc::new(app.clock.clone()),
        settings: Default::default(),
        idempotency_retention: zvv_intake::DEFAULT_IDEMPOTENCY_RETENTION,
        relay: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(zvv_intake::serve(deps, listener, async move {
        let _ = rx.await;
    }));
    let channel = zvv_platform::client::channel(
        &url,
        TokenSource::Static(SecretString::from(app.muni_professional())),
    )
    .expect("channel");
    (SubjectServiceClient::new(channel), tx)
}

async fn get(client: &mut Client, id: &str) -> Result<pb::Subject, tonic::Status> {
    client
        .get_subject(pb::GetSubjectRequest {
            subject_id: id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().subject.expect("subject"))
}

/// Seals `bsn` as rows were sealed before ciphertexts were bound to their subject (associated
/// data "zvv.bsn.v1"), written here independently of the vault.
fn legacy_ciphertext(keys: &KeyFile, bsn: &str) -> Vec<u8> {
    let key = STANDARD
        .decode(&keys.encryption_keys[&keys.active_key_id])
        .expect("base64 key");
    let cipher = ChaCha20Poly1305::new_from_slice(&key).expect("32-byte key");
    let nonce: [u8; 12] = Uuid::new_v4().as_bytes()[..12]
        .try_into()
        .expect("12 bytes");
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: bsn.as_bytes(),
                aad: b"zvv.bsn.v1",
            },
        )
        .expect("encrypt");
    [nonce.as_slice(), &ct].concat()
}

/// Rewrites the subjects as a database from before bound ciphertexts and key records holds
/// them, and removes the key records.
async fn make_legacy(app: &TestApp, subjects: &[(&str, &str)]) {
    for (id, bsn) in subjects {
        sqlx::query(
            "UPDATE intake.subjects SET bsn_ciphertext = $2, bsn_aad = 1 WHERE subject_id = $1::uuid",
        )
        .bind(id)
        .bind(legacy_ciphertext(&app.keys.bsn_keys, bsn))
        .execute(&app.pool)
        .await
        .expect("legacy row");
    }
    sqlx::query("DELETE FROM intake.service_keys")
        .execute(&app.pool)
        .await
        .expect("no key records");
}

#[tokio::test]
async fn a_fresh_database_records_its_keys_by_id_and_check_value() {
    let app = TestApp::spawn().await;
    let keys = &app.keys.bsn_keys;
    let expected = vec![
        (
            "bsn-encryption".to_owned(),
            "dev-1".to_owned(),
            check_value(&keys.encryption_keys["dev-1"]),
        ),
        (
            "bsn-lookup".to_owned(),
            "lookup-1".to_owned(),
            check_value(&keys.hmac_key),
        ),
    ];
    assert_eq!(records(&app.pool).await, expected);
    // never the key itself
    let text: Vec<String> = sqlx::query_scalar("SELECT t::text FROM intake.service_keys t")
        .fetch_all(&app.pool)
        .await
        .expect("records as text");
    for key in keys.encryption_keys.values().chain([&keys.hmac_key]) {
        let raw = STANDARD.decode(key).expect("base64");
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        for row in &text {
            assert!(!row.contains(key.as_str()) && !row.contains(&hex), "{row}");
        }
    }
    // a restart with the same keys is accepted and records nothing new
    app.register(BSN, "Sanne").await;
    zvv_intake::check_keys(&runtime_pool(&app).await, &vault(keys))
        .await
        .expect("the same keys again");
    assert_eq!(records(&app.pool).await, expected);
}

#[tokio::test]
async fn replicas_checking_together_record_the_keys_once() {
    let db = TestDb::create().await.expect("database");
    let settings = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(30),
    };
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(
            zvv_platform::db::connect(db.options.clone(), &settings)
                .await
                .expect("pool"),
        );
    }
    zvv_intake::migrate(&pools[0]).await.expect("migrate");
    let keys = KeyFile::generate();
    let v = vault(&keys);
    let (a, b, c) = tokio::join!(
        zvv_intake::check_keys(&pools[0], &v),
        zvv_intake::check_keys(&pools[1], &v),
        zvv_intake::check_keys(&pools[2], &v),
    );
    for result in [a, b, c] {
        result.expect("every replica's check succeeds");
    }
    assert_eq!(records(&pools[0]).await.len(), 2);
}

#[tokio::test]
async fn another_key_under_a_recorded_id_is_refused_naming_the_expected_ids() {
    let app = TestApp::spawn().await;
    app.register(BSN, "Sanne").await;
    let before = records(&app.pool).await;

    // a new data folder: every key new, under the same ids
    let message = refused(&app.pool, &KeyFile::generate()).await;
    for part in [
        "bsn-encryption key \"dev-1\" is not the key recorded under that id",
        "bsn-lookup key \"lookup-1\" is not the key recorded under that id",
        "expected (recorded in intake.service_keys): bsn-encryption \"dev-1\", bsn-lookup \"lookup-1\"",
        "configured: bsn-encryption \"dev-1\", bsn-lookup \"lookup-1\"",
        "Restore the key file",
        "point intake at the database",
    ] {
        assert!(message.contains(part), "{part:?} in:\n{message}");
    }

    // only the encryption key differs
    let mut wrong_encryption = app.keys.bsn_keys.clone();
    wrong_encryption
        .encryption_keys
        .insert("dev-1".into(), KeyFile::generate_encryption_key());
    let message = refused(&app.pool, &wrong_encryption).await;
    assert!(
        message.contains("bsn-encryption key \"dev-1\""),
        "{message}"
    );
    assert!(!message.contains("bsn-lookup key"), "{message}");

    // only the lookup key differs
    let mut wrong_lookup = app.keys.bsn_keys.clone();
    wrong_lookup.hmac_key = KeyFile::generate().hmac_key;
    let message = refused(&app.pool, &wrong_lookup).await;
    assert!(message.contains("bsn-lookup key \"lookup-1\""), "{message}");
    assert!(!message.contains("bsn-encryption key"), "{message}");

    // another lookup key under another id: the recorded one is missing while subjects need it
    wrong_lookup.hmac_key_id = "lookup-2".into();
    let message = refused(&app.pool, &wrong_lookup).await;
    assert!(
        message.contains("bsn-lookup key \"lookup-1\" is recorded but not configured"),
        "{message}"
    );
    assert!(message.contains("bsn-lookup \"lookup-2\""), "{message}");

    // other key ids altogether (another deployment's key file)
    let mut elsewhere = KeyFile::generate();
    let key = elsewhere.encryption_keys.remove("dev-1").expect("key");
    elsewhere.encryption_keys.insert("prod-7".into(), key);
    elsewhere.active_key_id = "prod-7".into();
    let message = refused(&app.pool, &elsewhere).await;
    assert!(
        message.contains("bsn-encryption key \"dev-1\" is recorded but not configured, and 1 subjects are still sealed with it"),
        "{message}"
    );
    assert!(message.contains("bsn-encryption \"prod-7\""), "{message}");

    assert_eq!(records(&app.pool).await, before, "nothing was recorded");
    // and the running service still reads its subjects
    assert_eq!(app.count_subjects().await, 1);
}

#[tokio::test]
async fn a_database_with_subjects_but_no_records_takes_only_keys_that_read_them() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    let b = app.register(&valid_bsn(3), "Daan").await;
    // as before the records were kept: legacy ciphertexts, no records
    make_legacy(
        &app,
        &[(&a.subject_id, BSN), (&b.subject_id, &valid_bsn(3))],
    )
    .await;

    let message = refused(&app.pool, &KeyFile::generate()).await;
    assert!(
        message.contains("the database holds data but no record of"),
        "{message}"
    );
    assert!(message.contains("cannot read that data"), "{message}");
    // the right encryption key with another lookup key does not read it either
    let mut wrong_lookup = app.keys.bsn_keys.clone();
    wrong_lookup.hmac_key = KeyFile::generate().hmac_key;
    let message = refused(&app.pool, &wrong_lookup).await;
    assert!(message.contains("lookup key"), "{message}");
    assert!(records(&app.pool).await.is_empty(), "nothing recorded");

    // the keys the data was written with are recorded
    zvv_intake::check_keys(&app.pool, &vault(&app.keys.bsn_keys))
        .await
        .expect("the right keys read the existing subjects");
    assert_eq!(records(&app.pool).await.len(), 2);
}

#[tokio::test]
async fn legacy_rows_are_not_read_until_reencrypted() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    make_legacy(&app, &[(&a.subject_id, BSN)]).await;
    zvv_intake::check_keys(&app.pool, &vault(&app.keys.bsn_keys))
        .await
        .expect("the right keys");

    let mut client = app.client(&app.muni_professional());
    let status = get(&mut client, &a.subject_id)
        .await
        .expect_err("a legacy ciphertext is not read");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(
        zvv_intake::legacy_subjects(&app.pool).await.expect("count"),
        1
    );

    let rewritten = zvv_intake::reencrypt(&runtime_pool(&app).await, &vault(&app.keys.bsn_keys))
        .await
        .expect("re-encrypt");
    assert_eq!(rewritten, 1);
    assert_eq!(
        zvv_intake::legacy_subjects(&app.pool).await.expect("count"),
        0
    );
    let form: i16 = sqlx::query_scalar("SELECT bsn_aad FROM intake.subjects")
        .fetch_one(&app.pool)
        .await
        .expect("form");
    assert_eq!(form, 2, "bound now");
    let subject = get(&mut client, &a.subject_id).await.expect("read again");
    assert_eq!(subject.bsn_masked, "******782");
}

#[tokio::test]
async fn a_rotation_key_is_recorded_and_old_rows_stay_readable() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    let keys = rotated(&app);

    // re-encryption waits until a service has started with the new key
    let early = zvv_intake::reencrypt(&app.pool, &vault(&keys)).await;
    match early {
        Err(zvv_intake::ReencryptError::Keys(e @ KeyCheckError::NotRecorded { .. })) => {
            assert!(e.to_string().contains("bsn-encryption \"dev-2\""), "{e}");
        }
        other => panic!("re-encryption before the key is recorded: {other:?}"),
    }

    zvv_intake::check_keys(&runtime_pool(&app).await, &vault(&keys))
        .await
        .expect("a rotation adds a key");
    let ids: Vec<String> = records(&app.pool)
        .await
        .into_iter()
        .map(|(purpose, id, _)| format!("{purpose}/{id}"))
        .collect();
    assert_eq!(
        ids,
        [
            "bsn-encryption/dev-1",
            "bsn-encryption/dev-2",
            "bsn-lookup/lookup-1"
        ]
    );

    let (mut client, _stop) = serve_with(&app, &keys).await;
    assert_eq!(
        get(&mut client, &a.subject_id)
            .await
            .expect("an old row")
            .bsn_masked,
        "******782"
    );
    let b = client
        .register_subject(crate::helpers::register_request(&valid_bsn(4), "Daan"))
        .await
        .expect("register with the new key")
        .into_inner()
        .subject
        .expect("subject");
    let key_of = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT bsn_key_id FROM intake.subjects WHERE subject_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("key id")
        }
    };
    assert_eq!(key_of(a.subject_id.clone()).await, "dev-1");
    assert_eq!(
        key_of(b.subject_id.clone()).await,
        "dev-2",
        "new writes use it"
    );

    // re-encrypted, dev-1 is no longer needed: a key file without it is accepted
    let rewritten = zvv_intake::reencrypt(&runtime_pool(&app).await, &vault(&keys))
        .await
        .expect("re-encrypt");
    assert_eq!(rewritten, 1, "only the row sealed with dev-1");
    assert_eq!(key_of(a.subject_id.clone()).await, "dev-2");
    let mut without_old = keys.clone();
    without_old.encryption_keys.remove("dev-1");
    zvv_intake::check_keys(&app.pool, &vault(&without_old))
        .await
        .expect("a retired key may leave the key file");
    // but dev-2 may not: subjects are sealed with it
    let mut without_new = keys.clone();
    without_new.encryption_keys.remove("dev-2");
    without_new.active_key_id = "dev-1".into();
    let message = refused(&app.pool, &without_new).await;
    assert!(
        message.contains("\"dev-2\" is recorded but not configured, and 2 subjects"),
        "{message}"
    );
    for id in [&a.subject_id, &b.subject_id] {
        get(&mut client, id).await.expect("still readable");
    }
}

#[tokio::test]
async fn reencrypt_rewrites_every_row_in_audited_batches() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..11 {
        ids.push(app.register(&valid_bsn(10 + n), "Kind").await.subject_id);
    }
    let keys = rotated(&app);
    let pool = runtime_pool(&app).await;
    zvv_intake::check_keys(&pool, &vault(&keys))
        .await
        .expect("rotation");
    let options = zvv_intake::ReencryptOptions {
        batch_size: 4,
        origin: "test".into(),
    };
    let rewritten = zvv_intake::reencrypt_with(&pool, &vault(&keys), &options)
        .await
        .expect("re-encrypt");
    assert_eq!(rewritten, 11);
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM intake.subjects WHERE bsn_key_id <> 'dev-2' OR bsn_aad <> 2",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(left, 0, "every row on the active key, bound");
    assert_eq!(
        zvv_intake::reencrypt_with(&pool, &vault(&keys), &options)
            .await
            .expect("again"),
        0,
        "nothing left to do"
    );

    let jobs: Vec<crate::helpers::AuditRow> = app
        .audit_rows()
        .await
        .into_iter()
        .filter(|r| r.action == "keys/reencrypt-bsn")
        .collect();
    assert_eq!(jobs.len(), 3, "batches of 4, 4 and 3");
    assert!(jobs.iter().all(|r| r.result == "OK"
        && r.actor_org == "zvv-intake"
        && r.actor_org_type == "SUITE"
        && r.legal_basis.contains("AVG art. 32")));
    let mut audited: Vec<String> = jobs
        .iter()
        .flat_map(|r| r.object_ids.iter().map(Uuid::to_string))
        .collect();
    audited.sort();
    ids.sort();
    assert_eq!(audited, ids, "every subject named once");
    assert!(app.verify_audit().await.is_intact());

    let (mut client, _stop) = serve_with(&app, &keys).await;
    for id in &ids {
        get(&mut client, id).await.expect("reads back");
    }
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_subject_does_not_open() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    let b = app.register(&valid_bsn(3), "Daan").await;
    sqlx::query(
        "UPDATE intake.subjects t SET bsn_ciphertext = s.bsn_ciphertext, bsn_key_id = s.bsn_key_id, \
         bsn_aad = s.bsn_aad FROM intake.subjects s WHERE s.subject_id = $1::uuid AND t.subject_id = $2::uuid",
    )
    .bind(&a.subject_id)
    .bind(&b.subject_id)
    .execute(&app.pool)
    .await
    .expect("move the ciphertext");

    let mut client = app.client(&app.muni_professional());
    let status = get(&mut client, &b.subject_id)
        .await
        .expect_err("moved ciphertext");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().starts_with("internal error"), "{status:?}");
    for leak in [BSN, "782", "******", a.subject_id.as_str()] {
        assert!(!status.message().contains(leak), "{leak:?} in {status:?}");
    }
    // found by its lookup value, it does not open either
    let resolved = app
        .client(&app.service())
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: valid_bsn(3),
            ..Default::default()
        })
        .await;
    assert_eq!(expect_err(resolved, "resolve").code(), Code::Internal);
    // the read is audited as failed, not as a read
    let rows = app.audit_rows().await;
    let last_get = rows
        .iter()
        .rev()
        .find(|r| r.action == action("GetSubject"))
        .expect("GetSubject audited");
    assert_eq!(last_get.result, "INTERNAL");
    assert_eq!(
        last_get.object_ids,
        [Uuid::parse_str(&b.subject_id).unwrap()]
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.action == action("GetSubject") && r.result == "OK"),
        "no successful read recorded"
    );
    // the subject it came from is unaffected
    assert_eq!(
        get(&mut client, &a.subject_id).await.expect("a").bsn_masked,
        "******782"
    );

    // re-encryption leaves it alone and names it
    let keys = rotated(&app);
    zvv_intake::check_keys(&app.pool, &vault(&keys))
        .await
        .expect("rotation");
    match zvv_intake::reencrypt(&app.pool, &vault(&keys)).await {
        Err(zvv_intake::ReencryptError::Unreadable {
            rewritten,
            subjects,
        }) => {
            assert_eq!(rewritten, 1);
            assert_eq!(subjects, [Uuid::parse_str(&b.subject_id).unwrap()]);
        }
        other => panic!("re-encrypting a moved ciphertext: {other:?}"),
    }
}

#[tokio::test]
async fn a_legacy_ciphertext_moved_to_another_subject_is_not_reencrypted_onto_it() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Sanne").await;
    let b = app.register(&valid_bsn(3), "Daan").await;
    make_legacy(&app, &[(&a.subject_id, BSN)]).await;
    // b gets a's legacy ciphertext, which is bound to nothing
    sqlx::query(
        "UPDATE intake.subjects SET bsn_ciphertext = $2, bsn_aad = 1 WHERE subject_id = $1::uuid",
    )
    .bind(&b.subject_id)
    .bind(legacy_ciphertext(&app.keys.bsn_keys, BSN))
    .execute(&app.pool)
    .await
    .expect("move");
    // the records as a start with these keys made them
    sqlx::query(
        "INSERT INTO intake.service_keys (purpose, key_id, check_value) VALUES \
         ('bsn-encryption', 'dev-1', $1), ('bsn-lookup', 'lookup-1', $2)",
    )
    .bind(check_value(&app.keys.bsn_keys.encryption_keys["dev-1"]))
    .bind(check_value(&app.keys.bsn_keys.hmac_key))
    .execute(&app.pool)
    .await
    .expect("records");
    let mut client = app.client(&app.muni_professional());
    assert_eq!(
        get(&mut client, &b.subject_id).await.expect_err("b").code(),
        Code::Internal
    );
    match zvv_intake::reencrypt(&app.pool, &vault(&app.keys.bsn_keys)).await {
        Err(zvv_intake::ReencryptError::Unreadable {
            rewritten,
            subjects,
        }) => {
            assert_eq!(rewritten, 1, "a's own");
            assert_eq!(subjects, [Uuid::parse_str(&b.subject_id).unwrap()]);
        }
        other => panic!("re-encrypting a moved legacy ciphertext: {other:?}"),
    }
    get(&mut client, &a.subject_id).await.expect("a reads");
    assert_eq!(
        get(&mut client, &b.subject_id)
            .await
            .expect_err("b still")
            .code(),
        Code::Internal
    );
}

#[test]
fn the_binary_refuses_other_keys_and_reencrypts() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(TestApp::spawn());
    rt.block_on(app.register(BSN, "Sanne"));
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, keys: &KeyFile| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(keys).expect("json")).expect("write");
        path
    };
    let wrong = write("wrong.json", &KeyFile::generate());
    let keys = rotated(&app);
    let right = write("rotated.json", &keys);
    let run = |keys_file: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_zvv-intake"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &app.db.url)
            .env("ZVV_BSN_KEYS_FILE", keys_file)
            .env("ZVV_JWT_PUBLIC_KEY_FILE", &app.keys.public_key_path)
            .env("ZVV_INTAKE_LISTEN", "127.0.0.1:0")
            .output()
            .expect("run zvv-intake")
    };

    let out = run(&wrong, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with other keys: {stderr}");
    assert!(
        stderr.contains("expected (recorded in intake.service_keys): bsn-encryption \"dev-1\""),
        "{stderr}"
    );
    assert!(stderr.contains("Restore the key file"), "{stderr}");

    // before a service ran with the rotated file, re-encryption refuses
    let out = run(&right, &["reencrypt"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not recorded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(zvv_intake::check_keys(&app.pool, &vault(&keys)))
        .expect("rotation recorded");
    let out = run(&right, &["reencrypt", "--batch-size", "10"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("re-encrypted 1 subjects with key dev-2"),
        "{stdout}"
    );
    let audited: i64 = rt
        .block_on(
            sqlx::query_scalar(
                "SELECT count(*) FROM intake.audit_log WHERE action = 'keys/reencrypt-bsn' \
                 AND peer LIKE 'zvv-intake reencrypt (OS user %)'",
            )
            .fetch_one(&app.pool),
        )
        .expect("audit");
    assert_eq!(audited, 1);
}

/// A second key file under other key ids is refused even before the first subject exists:
/// replicas with different lookup keys would each register the same BSN as another person.
#[tokio::test]
async fn a_second_key_file_is_refused_on_a_database_without_subjects() {
    let app = TestApp::spawn().await;
    let pool = runtime_pool(&app).await;
    let subjects: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.subjects")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(subjects, 0, "no subject yet");
    let mut other = KeyFile::generate();
    let key = other
        .encryption_keys
        .remove("dev-1")
        .expect("generated key");
    other.encryption_keys.insert("prod-1".into(), key);
    other.active_key_id = "prod-1".into();
    other.hmac_key_id = "lookup-prod".into();
    let message = refused(&pool, &other).await;
    assert!(
        message.contains("bsn-lookup key \"lookup-1\" is recorded but not configured"),
        "{message}"
    );
    assert!(message.contains("cannot be replaced"), "{message}");
    // nothing of the other file was recorded
    let ids: Vec<String> = records(&pool)
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert!(
        !ids.iter().any(|id| id == "prod-1" || id == "lookup-prod"),
        "{ids:?}"
    );
}

/// A lookup value moved between two subjects (by someone who can write the table) is caught
/// on every read: the sealed BSN no longer opens to the row's lookup value.
#[tokio::test]
async fn a_lookup_value_moved_to_another_subject_is_refused() {
    let app = TestApp::spawn().await;
    let a = app.register(BSN, "Anna").await;
    let b = app.register(&valid_bsn(7), "Bram").await;
    let pool = runtime_pool(&app).await;
    let lookup = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT bsn_lookup FROM intake.subjects WHERE subject_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("lookup value")
        }
    };
    let (la, lb) = (
        lookup(a.subject_id.clone()).await,
        lookup(b.subject_id.clone()).await,
    );
    let mut tx = pool.begin().await.expect("tx");
    for (id, value) in [
        (&a.subject_id, vec![0u8]),
        (&b.subject_id, la),
        (&a.subject_id, lb),
    ] {
        sqlx::query("UPDATE intake.subjects SET bsn_lookup = $2 WHERE subject_id = $1::uuid")
            .bind(id)
            .bind(value)
            .execute(&mut *tx)
            .await
            .expect("swap");
    }
    tx.commit().await.expect("commit");

    let mut client = app.client(&app.muni_professional());
    for id in [&a.subject_id, &b.subject_id] {
        let status = get(&mut client, id)
            .await
            .expect_err("a swapped lookup value");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
    }
    // registering Anna's BSN again finds Bram's row by the moved value: refused, not "Bram"
    let status = client
        .register_subject(crate::helpers::register_request(BSN, "Anna"))
        .await
        .expect_err("the BSN now points at another subject");
    assert!(
        matches!(status.code(), Code::Internal | Code::AlreadyExists),
        "{status:?}"
    );
    assert!(
        !status.message().contains(&b.subject_id),
        "{}",
        status.message()
    );
    let resolved = app
        .client(&app.service())
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect_err("resolving Anna's BSN must not give Bram's id");
    assert_eq!(resolved.code(), Code::Internal, "{resolved:?}");
}
