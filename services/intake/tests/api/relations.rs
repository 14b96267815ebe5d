//! LinkRelation, ListRelations (paging) and ListFamily, and the rules on relations.

use std::collections::HashSet;

use tonic::Code;
use zvv_proto::intake::v1 as pb;

use crate::helpers::{
    TestApp, assert_invalid, expect_err, link_request, now, request_id, valid_bsn,
};

/// Registers `n` subjects and returns their ids.
async fn subjects(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            app.register(&valid_bsn(i), &format!("Kind{i}"))
                .await
                .subject_id,
        );
    }
    ids
}

fn pair(r: &pb::Relation) -> (String, String) {
    (r.parent_subject_id.clone(), r.child_subject_id.clone())
}

#[tokio::test]
async fn link_records_parent_and_guardian_relations() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 3).await;
    let mut client = app.client(&app.team_coordinator());

    let parent = client
        .link_relation(link_request(&ids[0], &ids[1]))
        .await
        .expect("link parent")
        .into_inner()
        .relation
        .expect("relation");
    assert_eq!(parent.parent_subject_id, ids[0]);
    assert_eq!(parent.child_subject_id, ids[1]);
    assert_eq!(parent.kind, pb::RelationKind::Parent as i32);
    assert_eq!(
        parent.create_time.expect("create_time").seconds,
        now().timestamp()
    );

    let guardian = client
        .link_relation(pb::LinkRelationRequest {
            kind: pb::RelationKind::Guardian as i32,
            ..link_request(&ids[2], &ids[1])
        })
        .await
        .expect("link guardian")
        .into_inner()
        .relation
        .expect("relation");
    assert_eq!(guardian.kind, pb::RelationKind::Guardian as i32);

    let stored: Vec<(uuid::Uuid, uuid::Uuid, String)> = sqlx::query_as(
        "SELECT parent_subject_id, child_subject_id, kind FROM intake.relations ORDER BY kind",
    )
    .fetch_all(&app.pool)
    .await
    .expect("relations");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].2, "GUARDIAN");
    assert_eq!(stored[1].2, "PARENT");
}

#[tokio::test]
async fn list_relations_pages_through_every_relation_once() {
    let app = TestApp::spawn().await;
    // x has a parent g and two children a and b: three relations
    let ids = subjects(&app, 5).await;
    let (x, g, a, b, unrelated) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    app.link(g, x).await;
    app.link(x, a).await;
    app.link(x, b).await;
    app.link(g, unrelated).await;
    let expected: HashSet<(String, String)> = [
        (g.clone(), x.clone()),
        (x.clone(), a.clone()),
        (x.clone(), b.clone()),
    ]
    .into_iter()
    .collect();

    let mut client = app.client(&app.service());
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut tokens = Vec::new();
    for page in 0.. {
        assert!(page < 10, "paging does not end");
        let resp = client
            .list_relations(pb::ListRelationsRequest {
                subject_id: x.clone(),
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .expect("list page")
            .into_inner();
        assert!(resp.relations.len() <= 1, "page_size is respected");
        seen.extend(resp.relations.iter().map(pair));
        if resp.next_page_token.is_empty() {
            break;
        }
        assert!(
            !tokens.contains(&resp.next_page_token),
            "tokens move forward"
        );
        tokens.push(resp.next_page_token.clone());
        token = resp.next_page_token;
    }
    assert_eq!(seen.len(), 3, "three relations, each once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(
        tokens.len(),
        2,
        "three pages of one, the last without a token"
    );

    // one page with the default size has them all and no token
    let all = client
        .list_relations(pb::ListRelationsRequest {
            subject_id: x.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list all")
        .into_inner();
    assert_eq!(all.relations.iter().map(pair).collect::<Vec<_>>(), seen);
    assert!(all.next_page_token.is_empty());

    // a subject with no relations: empty and last
    let lonely = app.register(&valid_bsn(9), "Alleen").await.subject_id;
    let none = client
        .list_relations(pb::ListRelationsRequest {
            subject_id: lonely,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("list empty")
        .into_inner();
    assert!(none.relations.is_empty());
    assert!(none.next_page_token.is_empty());
}

#[tokio::test]
async fn list_relations_refuses_bad_arguments() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 1).await;
    let mut client = app.client(&app.muni_coordinator());
    let list = |token: &str, size: i32| pb::ListRelationsRequest {
        subject_id: ids[0].clone(),
        page_size: size,
        page_token: token.to_owned(),
    };
    // "***" is not base64; "eA" is base64 of "x", not a cursor; the third is a cursor of
    // two words that are not ids
    let not_ids = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "a|b");
    for token in ["***", "eA", not_ids.as_str()] {
        let status = expect_err(client.list_relations(list(token, 1)).await, token);
        assert_invalid(&status, "page_token", token);
    }
    let status = expect_err(client.list_relations(list("", -1)).await, "negative size");
    assert_invalid(&status, "page_size", "negative size");

    let status = expect_err(
        client
            .list_relations(pb::ListRelationsRequest {
                subject_id: "nope".into(),
                ..Default::default()
            })
            .await,
        "malformed id",
    );
    assert_invalid(&status, "subject_id", "malformed id");

    let status = expect_err(
        client
            .list_relations(pb::ListRelationsRequest {
                subject_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            })
            .await,
        "unknown id",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn list_family_finds_full_and_half_siblings_only() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 8).await;
    let (p1, p2, p3, a, b, c, d, e) = (
        &ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5], &ids[6], &ids[7],
    );
    // a and b share p1; a and c share p2 (c is a half-sibling of a, unrelated to b);
    // d is a child of p3 only; e has no parents at all
    app.link(p1, a).await;
    app.link(p1, b).await;
    app.link(p2, a).await;
    app.link(p2, c).await;
    app.link(p3, d).await;

    let mut client = app.client(&app.service());
    let mut family = async |id: &str| {
        let f = client
            .list_family(pb::ListFamilyRequest {
                subject_id: id.to_owned(),
            })
            .await
            .expect("family")
            .into_inner();
        (
            f.sibling_subject_ids.into_iter().collect::<HashSet<_>>(),
            f.parent_subject_ids.into_iter().collect::<HashSet<_>>(),
        )
    };
    let set = |xs: &[&String]| xs.iter().map(|s| (*s).clone()).collect::<HashSet<_>>();

    let (siblings, parents) = family(a).await;
    assert_eq!(
        siblings,
        set(&[b, c]),
        "full and half siblings; not a itself, not d"
    );
    assert_eq!(parents, set(&[p1, p2]));

    let (siblings, parents) = family(b).await;
    assert_eq!(siblings, set(&[a]), "c shares no parent with b");
    assert_eq!(parents, set(&[p1]));

    let (siblings, _) = family(c).await;
    assert_eq!(siblings, set(&[a]));

    let (siblings, parents) = family(d).await;
    assert!(siblings.is_empty(), "an only child: {siblings:?}");
    assert_eq!(parents, set(&[p3]));

    let (siblings, parents) = family(e).await;
    assert!(siblings.is_empty() && parents.is_empty());

    // a parent's own family is about the parent's parents, not its children
    let (siblings, _) = family(p1).await;
    assert!(siblings.is_empty(), "{siblings:?}");

    let status = expect_err(
        client
            .list_family(pb::ListFamilyRequest {
                subject_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        "unknown id",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        client
            .list_family(pb::ListFamilyRequest {
                subject_id: "x".into(),
            })
            .await,
        "malformed id",
    );
    assert_invalid(&status, "subject_id", "malformed id");
}

#[tokio::test]
async fn a_subject_cannot_be_its_own_parent() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 1).await;
    let status = expect_err(
        app.client(&app.muni_coordinator())
            .link_relation(link_request(&ids[0], &ids[0]))
            .await,
        "self relation",
    );
    assert_invalid(&status, "child_subject_id", "self relation");
}

#[tokio::test]
async fn cycles_are_refused() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 5).await;
    let mut client = app.client(&app.muni_coordinator());

    // 2-cycle: a parent of b, then b parent of a
    app.link(&ids[0], &ids[1]).await;
    let status = expect_err(
        client.link_relation(link_request(&ids[1], &ids[0])).await,
        "2-cycle",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // 3-cycle: c → d → e, then e parent of c
    app.link(&ids[2], &ids[3]).await;
    app.link(&ids[3], &ids[4]).await;
    let status = expect_err(
        client.link_relation(link_request(&ids[4], &ids[2])).await,
        "3-cycle",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // a longer one through both chains: b → c links them (no cycle), then e → a closes one
    app.link(&ids[1], &ids[2]).await;
    let status = expect_err(
        client.link_relation(link_request(&ids[4], &ids[0])).await,
        "5-cycle",
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM intake.relations")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 4, "no refused relation was stored");
}

#[tokio::test]
async fn link_refuses_bad_kinds_unknown_subjects_and_duplicates() {
    let app = TestApp::spawn().await;
    let ids = subjects(&app, 2).await;
    let mut client = app.client(&app.muni_coordinator());

    for kind in [pb::RelationKind::Unspecified as i32, 99] {
        let status = expect_err(
            client
                .link_relation(pb::LinkRelationRequest {
                    kind,
                    ..link_request(&ids[0], &ids[1])
                })
                .await,
            "kind",
        );
        assert_invalid(&status, "kind", &format!("kind {kind}"));
    }

    let ghost = uuid::Uuid::now_v7().to_string();
    let status = expect_err(
        client.link_relation(link_request(&ghost, &ids[1])).await,
        "unknown parent",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        client.link_relation(link_request(&ids[0], &ghost)).await,
        "unknown child",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    for (parent, child, field) in [
        ("nope", ids[1].as_str(), "parent_subject_id"),
        (ids[0].as_str(), "", "child_subject_id"),
    ] {
        let status = expect_err(
            client.link_relation(link_request(parent, child)).await,
            field,
        );
        assert_invalid(&status, field, field);
    }
    let status = expect_err(
        client
            .link_relation(pb::LinkRelationRequest {
                request_id: String::new(),
                ..link_request(&ids[0], &ids[1])
            })
            .await,
        "no request_id",
    );
    assert_invalid(&status, "request_id", "no request_id");

    // the first link works; the same relation under a new request_id is ALREADY_EXISTS
    let first = link_request(&ids[0], &ids[1]);
    let linked = client
        .link_relation(first.clone())
        .await
        .expect("link")
        .into_inner();
    let status = expect_err(
        client
            .link_relation(pb::LinkRelationRequest {
                request_id: request_id(),
                ..first.clone()
            })
            .await,
        "duplicate",
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // replaying the first request_id returns the first response
    let replay = client
        .link_relation(first.clone())
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay, linked);
    // the same request_id for another relation is refused
    let status = expect_err(
        client
            .link_relation(pb::LinkRelationRequest {
                kind: pb::RelationKind::Guardian as i32,
                ..first
            })
            .await,
        "reused request_id",
    );
    assert_invalid(&status, "request_id", "reused request_id");
}
