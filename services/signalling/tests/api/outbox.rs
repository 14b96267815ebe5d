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

/// The match events as (type, ids, codes), in order.
async fn match_events(app: &TestApp) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    sqlx::query_as(
        "SELECT event_type, ids, codes FROM signalling.outbox \
         WHERE event_type LIKE 'signalling.match.%' ORDER BY occurred_at, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox")
}

#[tokio::test]
async fn retention_and_close_signal_emit_the_same_match_closed_payload() {
    let app = TestApp::spawn().await;
    // a client match closed by CloseSignal
    let closed_by_hand = app.child(&valid_bsn(1)).await;
    let school = app
        .signal(SCHOOL, &closed_by_hand)
        .await
        .signal
        .expect("signal");
    let first = app.signal(YOUTH_HEALTH, &closed_by_hand).await.matches[0]
        .match_id
        .clone();
    app.close(SCHOOL, &school.signal_id).await;
    // a client match and a family match that retention closes when their signals expire
    let expiring = app.child(&valid_bsn(2)).await;
    app.signal(SCHOOL, &expiring).await;
    let second = app.signal(YOUTH_HEALTH, &expiring).await.matches[0]
        .match_id
        .clone();
    let (_, sister, brother) = app.family(10).await;
    app.signal(SCHOOL, &sister).await;
    let family = app
        .signal(POLICE, &brother)
        .await
        .matches
        .iter()
        .find(|m| m.kind == zvv_proto::signalling::v1::MatchKind::Family as i32)
        .expect("a family match")
        .match_id
        .clone();

    let later = crate::helpers::now() + chrono::Months::new(13);
    let report = zvv_signalling::retention::run(
        &app.runtime_pool,
        &zvv_signalling::retention::RetentionRules::default(),
        later.date_naive(),
        later,
    )
    .await
    .expect("retention");
    assert_eq!(report.expired, 5, "{report:?}");

    let events = match_events(&app).await;
    let closed: Vec<&(String, serde_json::Value, serde_json::Value)> = events
        .iter()
        .filter(|(t, _, _)| t == "signalling.match.closed")
        .collect();
    let payload = |id: &str, kind: &str| {
        (
            serde_json::json!({ "match_id": id }),
            serde_json::json!({ "kind": kind }),
        )
    };
    assert_eq!(
        closed
            .iter()
            .map(|(_, ids, codes)| (ids.clone(), codes.clone()))
            .collect::<Vec<_>>(),
        [
            payload(&first, "CLIENT"),
            payload(&second, "CLIENT"),
            payload(&family, "FAMILY"),
        ],
        "CloseSignal and retention close matches with one payload"
    );
    // created and updated carry the same payload as closed
    for (event_type, ids, codes) in &events {
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        if ["created", "updated", "closed"]
            .iter()
            .any(|s| event_type.ends_with(s))
        {
            assert_eq!(keys(ids), ["match_id"], "{event_type}: {ids}");
            assert_eq!(keys(codes), ["kind"], "{event_type}: {codes}");
        }
    }
}

/// Every kind of event signalling writes maps to a suite event of its resource (the relay's
/// mapping) and names its audience: the owning organisation of a signal, the organisations in a
/// match, the municipality a referral is routed to.
#[tokio::test]
async fn every_event_maps_to_a_suite_event_with_its_audience() {
    use zvv_platform::auth::{OrgType, Role};
    use zvv_proto::signalling::v1 as pb;

    use crate::helpers::{referral_on, request_id};

    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let school = app.signal(SCHOOL, &subject).await.signal.expect("signal");
    let health = app.signal(YOUTH_HEALTH, &subject).await;
    let match_id = health.matches[0].match_id.clone();
    app.signal(POLICE, &subject).await;
    let mut client = app.client(SCHOOL);
    client
        .record_information_duty(pb::RecordInformationDutyRequest {
            request_id: request_id(),
            signal_id: school.signal_id.clone(),
            parents_informed_on: crate::helpers::TODAY.into(),
            ..Default::default()
        })
        .await
        .expect("information duty");
    client
        .assign_coordinator(pb::AssignCoordinatorRequest {
            request_id: request_id(),
            match_id: match_id.clone(),
            organisation: SCHOOL.name.into(),
            contact: Some(contact(SCHOOL)),
        })
        .await
        .expect("coordinator");
    client
        .mark_coordinated(pb::MarkCoordinatedRequest {
            request_id: request_id(),
            match_id: match_id.clone(),
        })
        .await
        .expect("coordinated");
    app.close(SCHOOL, &school.signal_id).await;
    let mut referrals = app.referrals_with(&app.token(POLICE));
    let decided = referrals
        .submit_referral(referral_on(&subject))
        .await
        .expect("referral")
        .into_inner()
        .referral
        .expect("referral");
    referrals
        .submit_referral(referral_on(&subject))
        .await
        .expect("a referral left undecided");
    app.referrals_with(&app.keys.token_in(
        "zvh-amsterdam",
        OrgType::Municipality,
        &[Role::TriageOfficer],
        &["GM0363"],
    ))
    .decide_referral(pb::DecideReferralRequest {
        request_id: request_id(),
        referral_id: decided.referral_id.clone(),
        decision: pb::ReferralDecision::NoAction as i32,
        rationale: "al bekend bij het wijkteam".into(),
    })
    .await
    .expect("decided");
    let later = crate::helpers::now() + chrono::Months::new(13);
    let clock: zvv_platform::clock::SharedClock =
        std::sync::Arc::new(zvv_platform::clock::ManualClock::new(later));
    zvv_signalling::report_overdue_referrals(&app.runtime_pool, clock)
        .await
        .expect("overdue");
    zvv_signalling::retention::run(
        &app.runtime_pool,
        &zvv_signalling::retention::RetentionRules::default(),
        later.date_naive(),
        later,
    )
    .await
    .expect("retention");

    type Row = (
        uuid::Uuid,
        String,
        serde_json::Value,
        serde_json::Value,
        String,
        Vec<String>,
        Vec<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT event_id, event_type, ids, codes, trace_id, audience_organisations, \
         audience_municipalities FROM signalling.outbox ORDER BY occurred_at, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    let in_match = [SCHOOL.name, YOUTH_HEALTH.name, POLICE.name];
    let mut types = std::collections::BTreeSet::new();
    for (event_id, event_type, ids, codes, trace_id, orgs, municipalities) in rows {
        let strings = |v: serde_json::Value| {
            serde_json::from_value::<std::collections::BTreeMap<String, String>>(v)
                .expect("strings")
        };
        let event = zvv_platform::relay::to_event(&zvv_platform::relay::OutboxRow {
            event_id,
            event_type: event_type.clone(),
            occurred_at: crate::helpers::now(),
            ids: strings(ids),
            codes: strings(codes),
            trace_id,
            audience_organisations: orgs.clone(),
            audience_municipalities: municipalities.clone(),
        })
        .unwrap_or_else(|e| panic!("{event_type} maps: {e}"));
        assert_eq!(event.source, "signalling");
        assert_eq!(
            event.resource_id,
            event.attributes[&format!("{}_id", event.resource)]
        );
        match event.resource.as_str() {
            "signal" => {
                assert_eq!(event.channel, "signalling.signals");
                assert_eq!(orgs.len(), 1, "{event_type}: the owner, {orgs:?}");
                assert!(in_match.contains(&orgs[0].as_str()));
                assert!(municipalities.is_empty());
            }
            "match" => {
                assert_eq!(event.channel, "signalling.matches");
                assert_eq!(event.resource_id, match_id);
                assert!(
                    orgs.len() >= 2 && orgs.iter().all(|o| in_match.contains(&o.as_str())),
                    "{event_type}: the organisations in the match, {orgs:?}"
                );
                assert!(municipalities.is_empty());
            }
            "referral" => {
                assert_eq!(event.channel, "signalling.referrals");
                assert!(orgs.is_empty(), "{event_type}: {orgs:?}");
                assert_eq!(municipalities, ["GM0363"], "{event_type}");
            }
            other => panic!("an event about {other}"),
        }
        types.insert(event_type);
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "signalling.match.closed",
            "signalling.match.coordinated",
            "signalling.match.coordinator_assigned",
            "signalling.match.created",
            "signalling.match.updated",
            "signalling.referral.decided",
            "signalling.referral.overdue",
            "signalling.referral.submitted",
            "signalling.signal.closed",
            "signalling.signal.expired",
            "signalling.signal.information_duty_recorded",
            "signalling.signal.registered",
        ]
    );
}
