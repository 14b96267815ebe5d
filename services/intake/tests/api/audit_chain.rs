//! The audit chain against the roles that could tamper with it: the runtime role may only add
//! and read audit rows; the owner can rewrite every row and re-hash every seal, and is caught by
//! the signed checkpoints outside the database; cut-off, deleted, edited and inserted records
//! are each reported with their position; a transaction that commits late is sealed once.

use sqlx::{Connection, Executor, PgConnection};
use zvv_platform::audit::{
    ENTRY_COLUMNS, GENESIS, ProblemKind, checkpoint::sink_file, entry_from_row, seal::seal_all,
};

use zvv_platform::server::{AuditSettings, ServerSettings};

use crate::helpers::{TestApp, valid_bsn};

/// A server whose own sealer and checkpoints wait an hour, so that each test seals and signs
/// when it says so.
async fn quiet_app() -> TestApp {
    TestApp::spawn_with(ServerSettings {
        audit: AuditSettings {
            sealer: zvv_platform::audit::seal::SealerSettings {
                interval: std::time::Duration::from_secs(3600),
                checkpoint_interval: std::time::Duration::from_secs(3600),
            },
            checkpoints: None,
        },
        ..ServerSettings::default()
    })
    .await
}

const SCHEMA: zvv_platform::db::Schema = zvv_intake::SCHEMA;

/// `n` pairs of audited calls (a registration and a read), each on a new subject.
/// Committed audit entries without a seal.
async fn unsealed(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM intake.audit_entries e \
         WHERE NOT EXISTS (SELECT 1 FROM intake.audit_seals s WHERE s.entry_id = e.entry_id)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("unsealed entries")
}

async fn calls(app: &TestApp, n: usize) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(100);
    for _ in 0..n {
        let bsn = valid_bsn(NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let subject = app.register(&bsn, "Noor").await;
        app.get(&subject.subject_id).await;
    }
}

/// Seals everything and makes sure a checkpoint covers the head (the server's own job may have
/// written it already); returns the head's sequence.
async fn checkpoint(app: &TestApp) -> i64 {
    // the server's sealer runs once at its start: while it holds the schema's seal lock, a
    // checkpoint is skipped (None), so try again until one covers the head
    for _ in 0..100 {
        seal_all(&app.pool, SCHEMA).await.expect("seal");
        app.keys
            .checkpoint_writer()
            .expect("writer")
            .checkpoint(&app.pool, SCHEMA)
            .await
            .expect("checkpoint");
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM intake.audit_seals")
            .fetch_one(&app.pool)
            .await
            .expect("the sealed head");
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM intake.audit_checkpoints")
                .fetch_one(&app.pool)
                .await
                .expect("latest checkpoint");
        if let Some(latest) = latest.filter(|l| Some(*l) >= head) {
            return latest;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no checkpoint covers the head");
}

async fn as_owner(app: &TestApp) -> PgConnection {
    PgConnection::connect_with(&app.roles.owner)
        .await
        .expect("connect as owner")
}

fn kinds(report: &zvv_platform::audit::VerifyReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

#[tokio::test]
async fn the_runtime_role_may_only_add_and_read_audit_rows() {
    let app = quiet_app().await;
    calls(&app, 1).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    let mut runtime = PgConnection::connect_with(&app.roles.runtime)
        .await
        .expect("connect as runtime");
    for table in ["audit_entries", "audit_seals", "audit_checkpoints"] {
        for sql in [
            format!("UPDATE intake.{table} SET signed_at = signed_at"),
            format!("DELETE FROM intake.{table}"),
            format!("TRUNCATE intake.{table}"),
            format!("ALTER TABLE intake.{table} DISABLE TRIGGER ALL"),
            format!("ALTER TABLE intake.{table} DISABLE TRIGGER USER"),
            format!("DROP TRIGGER {table}_append_only ON intake.{table}"),
            format!("DROP TABLE intake.{table}"),
        ] {
            let sql = match table {
                "audit_entries" => sql.replace("signed_at = signed_at", "result = result"),
                "audit_seals" => sql.replace("signed_at = signed_at", "hash = hash"),
                _ => sql,
            };
            let err = runtime
                .execute(sqlx::AssertSqlSafe(sql.clone()))
                .await
                .expect_err(&sql);
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
        }
    }
    // it can read and append
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.audit_entries")
        .fetch_one(&mut runtime)
        .await
        .expect("read");
    assert_eq!(n, 2);
    runtime.close().await.expect("close");
    assert!(app.verify_audit().await.is_intact());
}

#[tokio::test]
async fn an_owner_who_rewrites_and_rehashes_the_chain_is_caught_by_the_checkpoints() {
    let app = quiet_app().await;
    calls(&app, 3).await;
    let covered = checkpoint(&app).await;
    assert_eq!(covered, 6);
    calls(&app, 1).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");

    // the owner edits entry 2, re-seals every seal from 2 on with correct hashes, and removes
    // the checkpoints from the database: links and hashes are perfect again
    let mut owner = as_owner(&app).await;
    for table in ["audit_entries", "audit_seals", "audit_checkpoints"] {
        owner
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE intake.{table} DISABLE TRIGGER USER"
            )))
            .await
            .expect("the owner disables its triggers");
    }
    owner
        .execute("UPDATE intake.audit_entries SET actor_org = 'someone-else' WHERE entry_id = 2")
        .await
        .expect("edit");
    owner
        .execute("DELETE FROM intake.audit_checkpoints")
        .await
        .expect("drop the checkpoints in the database");
    let seals: Vec<(i64, i64)> =
        sqlx::query_as("SELECT seq, entry_id FROM intake.audit_seals ORDER BY seq")
            .fetch_all(&mut owner)
            .await
            .expect("seals");
    let mut prev = GENESIS.to_vec();
    for (seq, entry_id) in seals {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM intake.audit_entries WHERE entry_id = $1"
        )))
        .bind(entry_id)
        .fetch_one(&mut owner)
        .await
        .expect("entry");
        let horizon: String =
            sqlx::query_scalar("SELECT horizon::text FROM intake.audit_seals WHERE seq = $1")
                .bind(seq)
                .fetch_one(&mut owner)
                .await
                .expect("horizon");
        let hash = entry_from_row(&row)
            .expect("entry")
            .seal_hash(seq, &horizon, &prev);
        sqlx::query("UPDATE intake.audit_seals SET prev_hash = $2, hash = $3 WHERE seq = $1")
            .bind(seq)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut owner)
            .await
            .expect("re-hash");
        prev = hash;
    }
    owner.close().await.expect("close");

    let report = app.verify_audit().await;
    assert!(!report.is_intact());
    assert_eq!(kinds(&report), [ProblemKind::Rewritten], "{report:?}");
    assert_eq!(report.problems[0].seq, Some(covered));
    assert!(
        report.problems[0].detail.contains("after seq 0"),
        "{}",
        report.problems[0].detail
    );
}

#[tokio::test]
async fn deleting_the_newest_records_is_caught() {
    let app = quiet_app().await;
    calls(&app, 3).await;
    let covered = checkpoint(&app).await;
    let mut owner = as_owner(&app).await;
    for table in ["audit_entries", "audit_seals"] {
        owner
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE intake.{table} DISABLE TRIGGER USER"
            )))
            .await
            .expect("disable");
    }
    owner
        .execute("DELETE FROM intake.audit_seals WHERE seq > 4")
        .await
        .expect("cut the seals");
    owner
        .execute("DELETE FROM intake.audit_entries WHERE entry_id IN (5, 6)")
        .await
        .expect("cut the entries");
    owner.close().await.expect("close");
    let report = app.verify_audit().await;
    assert!(kinds(&report).contains(&ProblemKind::CutOff), "{report:?}");
    let cut = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::CutOff)
        .expect("cut-off");
    assert_eq!(cut.seq, Some(covered));
    assert!(cut.detail.contains("after 4"), "{}", cut.detail);
}

#[tokio::test]
async fn edited_deleted_and_inserted_records_are_reported_with_their_position() {
    let app = quiet_app().await;
    calls(&app, 3).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    let mut owner = as_owner(&app).await;
    owner
        .execute("ALTER TABLE intake.audit_entries DISABLE TRIGGER USER")
        .await
        .expect("disable");
    owner
        .execute(
            "UPDATE intake.audit_entries SET result = 'OK' , actor_sub = 'x' WHERE entry_id = 2",
        )
        .await
        .expect("edit");
    owner
        .execute("DELETE FROM intake.audit_entries WHERE entry_id = 4")
        .await
        .expect("delete");
    // an entry slipped in among sealed ones, with an old transaction id
    owner
        .execute(
            "INSERT INTO intake.audit_entries (txid, occurred_at, action, object_ids, result, actor_sub, \
             actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, \
             end_user_roles, peer, legal_basis, trace_id) \
             VALUES ('3'::xid8, now(), 'x', '{}', 'OK', '', '', '', '', '', '', '', '', '', '', '')",
        )
        .await
        .expect("insert");
    owner.close().await.expect("close");
    let report = app.verify_audit().await;
    let found: Vec<(ProblemKind, Option<i64>)> =
        report.problems.iter().map(|p| (p.kind, p.seq)).collect();
    assert!(
        found.contains(&(ProblemKind::EditedEntry, Some(2))),
        "{report:?}"
    );
    assert!(
        found.contains(&(ProblemKind::DeletedEntry, Some(4))),
        "{report:?}"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::InsertedEntry && p.entry_id == Some(7)),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_transaction_that_commits_after_later_ones_is_sealed_once() {
    let app = quiet_app().await;
    calls(&app, 1).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    // a transaction takes its id and writes its entry, then stays open
    let mut slow = PgConnection::connect_with(&app.roles.runtime)
        .await
        .expect("connect");
    slow.execute("BEGIN").await.expect("begin");
    slow.execute(
        "INSERT INTO intake.audit_entries (occurred_at, action, object_ids, result, actor_sub, \
         actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, \
         end_user_roles, peer, legal_basis, trace_id) \
         VALUES (now(), 'slow', '{}', 'OK', '', '', '', '', '', '', '', '', '', '', '')",
    )
    .await
    .expect("slow entry");
    // later calls commit first, and are sealed: the open transaction holds nobody back
    // (counted from the table, not from seal_all: the server's own sealer runs a first round
    // at start, which on a loaded machine can come this late)
    calls(&app, 2).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    assert_eq!(unsealed(&app).await, 0, "every committed entry is sealed");
    slow.execute("COMMIT").await.expect("commit late");
    slow.close().await.expect("close");
    assert_eq!(unsealed(&app).await, 1, "the late one waits");
    // the late one is still looked at (the horizon stayed below it) and sealed once, last
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    assert_eq!(unsealed(&app).await, 0);
    assert_eq!(seal_all(&app.pool, SCHEMA).await.expect("seal"), 0, "once");
    let slow_seals: Vec<i64> = sqlx::query_scalar(
        "SELECT s.seq FROM intake.audit_seals s JOIN intake.audit_entries e USING (entry_id) \
         WHERE e.action = 'slow'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("slow seal");
    assert_eq!(
        slow_seals,
        [7],
        "sealed once, in commit order after the later calls"
    );
    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.entries, report.seals, report.pending), (7, 7, 0));
    // an aborted transaction leaves nothing to seal
    let mut aborted = PgConnection::connect_with(&app.roles.runtime)
        .await
        .expect("connect");
    aborted.execute("BEGIN").await.expect("begin");
    aborted
        .execute(
            "INSERT INTO intake.audit_entries (occurred_at, action, object_ids, result, actor_sub, \
             actor_org, actor_org_type, actor_roles, end_user_sub, end_user_org, end_user_org_type, \
             end_user_roles, peer, legal_basis, trace_id) \
             VALUES (now(), 'aborted', '{}', 'OK', '', '', '', '', '', '', '', '', '', '', '')",
        )
        .await
        .expect("entry");
    aborted.execute("ROLLBACK").await.expect("rollback");
    aborted.close().await.expect("close");
    calls(&app, 1).await;
    seal_all(&app.pool, SCHEMA).await.expect("seal");
    assert_eq!(unsealed(&app).await, 0);
    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.entries, report.seals),
        (9, 9),
        "the aborted entry left nothing"
    );
}

#[tokio::test]
async fn the_servers_sealer_keeps_up_and_signs_checkpoints_to_the_file() {
    let app = TestApp::spawn().await;
    calls(&app, 2).await;
    // the server seals every 50 ms and signs every second
    let mut sealed = 0;
    for _ in 0..100 {
        sealed = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM intake.audit_seals")
            .fetch_one(&app.pool)
            .await
            .expect("count");
        let file = sink_file(&app.keys.checkpoint_dir(), SCHEMA);
        if sealed == 4 && file.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sealed, 4, "the server's own sealer sealed every entry");
    let file = sink_file(&app.keys.checkpoint_dir(), SCHEMA);
    let lines = zvv_platform::audit::checkpoint::read_file(&file).expect("checkpoints");
    assert!(
        !lines.is_empty(),
        "a checkpoint in the file outside the database"
    );
    let report = app.verify_audit().await;
    assert!(report.is_intact(), "{report:?}");
    assert!(report.checkpoints >= 2, "from the database and the file");
    assert!(report.max_seal_lag.is_some());
}
