//! Outbox events, written in the same transaction as the change: ids and codes only.

use std::collections::HashMap;

use crate::helpers::{POLICE, SCHOOL, TestApp, YOUTH_HEALTH, contact, valid_bsn};

#[tokio::test]
async fn create_join_leave_and_close_are_events_of_ids_and_codes() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let school = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    let health = app.signal(YOUTH_HEALTH, &subject).await;
    let match_id = health.matches.first().expect("match").match_id.clone();
    let health = health.signal.expect("signal");
    app.signal(POLICE, &subject).await;
    app.close(SCHOOL, &school.signal_id).await;
    app.close(YOUTH_HEALTH, &health.signal_id).await;

    let events: Vec<(String, serde_json::Value, serde_json::Value, String)> = sqlx::query_as(
        "SELECT event_type, ids, codes, trace_id FROM signalling.outbox ORDER BY occurred_at",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (kind, _, _, _) in &events {
        *counts.entry(kind.as_str()).or_default() += 1;
    }
    assert_eq!(
        counts.get("signalling.signal.registered"),
        Some(&3),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("signalling.signal.closed"),
        Some(&2),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("signalling.match.created"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("signalling.match.closed"),
        Some(&1),
        "{counts:?}"
    );
    assert!(
        counts.get("signalling.match.updated").copied().unwrap_or(0) >= 2,
        "the join and the leave update the match: {counts:?}"
    );

    for (kind, ids, codes, trace_id) in &events {
        assert_eq!(trace_id.len(), 32, "{kind} carries a trace id");
        if kind.starts_with("signalling.match.") {
            assert_eq!(
                ids["match_id"],
                serde_json::json!(match_id),
                "{kind}: {ids}"
            );
        }
        let text = format!("{ids} {codes}");
        for org in [SCHOOL, YOUTH_HEALTH, POLICE] {
            let c = contact(org);
            for secret in [&c.name, &c.email, &c.phone] {
                assert!(
                    !text.contains(secret.as_str()),
                    "{kind} carries contact data: {text}"
                );
            }
        }
    }
}
