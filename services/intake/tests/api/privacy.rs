//! No registered BSN is stored in clear: every row of every table in schema `intake`, read as
//! text, is free of them (and of their ASCII bytes in hex, as a bytea would show them).

use zvv_proto::intake::v1 as pb;

use crate::helpers::{BSN, TestApp, request_id, valid_bsn};

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn no_table_holds_a_bsn_in_clear() {
    let app = TestApp::spawn().await;
    let second = valid_bsn(5);
    let resolved_only = valid_bsn(6);
    let a = app.register(BSN, "Sanne").await;
    let b = app.register(&second, "Daan").await;
    app.link(&a.subject_id, &b.subject_id).await;
    let mut service = app.client(&app.service());
    service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: BSN.into(),
            create_if_missing: false,
            ..Default::default()
        })
        .await
        .expect("resolve");
    service
        .resolve_subject(pb::ResolveSubjectRequest {
            bsn: resolved_only.clone(),
            create_if_missing: true,
            ..Default::default()
        })
        .await
        .expect("resolve and create");
    // failed calls carrying a BSN: a duplicate, an invalid one, a replay with a different body
    let mut client = app.client(&app.muni_professional());
    let duplicate = crate::helpers::register_request(&second, "Again");
    let _ = client
        .register_subject(duplicate)
        .await
        .expect_err("duplicate");
    let _ = client
        .register_subject(pb::RegisterSubjectRequest {
            given_name: String::new(),
            ..crate::helpers::register_request(&valid_bsn(7), "x")
        })
        .await
        .expect_err("invalid");
    let _ = client
        .update_subject(pb::UpdateSubjectRequest {
            subject_id: a.subject_id.clone(),
            subject: Some(pb::Subject {
                given_name: "Sanne Maria".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
            request_id: request_id(),
        })
        .await
        .expect("update");

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'intake' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables");
    for expected in [
        "audit_log",
        "idempotency",
        "outbox",
        "relations",
        "subjects",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} in {tables:?}"
        );
    }

    let secrets = [
        BSN.to_owned(),
        second.clone(),
        resolved_only.clone(),
        valid_bsn(7),
    ];
    let mut rows_seen = 0;
    for table in &tables {
        assert!(
            table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "plain table name {table}"
        );
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM intake.{table} t"
        )))
        .fetch_all(&app.pool)
        .await
        .unwrap_or_else(|e| panic!("read {table}: {e}"));
        rows_seen += rows.len();
        for row in &rows {
            for bsn in &secrets {
                assert!(
                    !row.contains(bsn.as_str()),
                    "{table} holds a BSN in clear: {row}"
                );
                assert!(
                    !row.contains(&hex(bsn)),
                    "{table} holds a BSN's bytes: {row}"
                );
            }
        }
    }
    assert!(rows_seen > 10, "the scan saw the rows ({rows_seen})");

    // the sealed column really is ciphertext, with a key id, and the lookup is keyed
    let sealed: Vec<(Vec<u8>, Vec<u8>, String)> =
        sqlx::query_as("SELECT bsn_lookup, bsn_ciphertext, bsn_key_id FROM intake.subjects")
            .fetch_all(&app.pool)
            .await
            .expect("sealed");
    assert_eq!(sealed.len(), 3);
    for (lookup, ciphertext, key_id) in &sealed {
        assert_eq!(lookup.len(), 32, "an HMAC-SHA256");
        assert!(ciphertext.len() > 9 + 12, "nonce, ciphertext and tag");
        assert!(!key_id.is_empty());
    }
    // and it is not a plain (unkeyed) hash, which anyone could compute for every BSN
    for bsn in &secrets {
        let plain: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM intake.subjects \
             WHERE bsn_lookup IN (sha256(convert_to($1, 'UTF8')), sha512(convert_to($1, 'UTF8')), \
                                  decode(md5($1), 'hex'))",
        )
        .bind(bsn)
        .fetch_one(&app.pool)
        .await
        .expect("plain hashes");
        assert_eq!(plain, 0, "the lookup of a BSN is a plain hash");
    }
}
