//! Reintegration end to end: a prison records the start of a detention by BSN (intake registers
//! the person; reintegration keeps only the subject id), the continuity plan's deadline monitor
//! warns the responsible municipality, a coordinator gives a condition to a probation office,
//! which gets the task and later the warning for it, each through reintegration's outbox, the
//! relay, Publish, routing and the inbox of notifications; another municipality gets none of it.

use std::time::Duration;

use chrono::NaiveDate;
use zvv_e2e::{Harness, NotificationsClient};
use zvv_platform::{
    auth::{OrgType, Role},
    clock::Clock,
};
use zvv_proto::{
    events::v1::Event,
    notifications::v1::{self as npb, create_subscription_request::Delivery},
    reintegration::v1::{self as rpb, record_detention_event_request::Subject as DetentionSubject},
};

const MUNICIPALITY: &str = "GM0855";
const PARTNER: &str = "reclassering-zuid";

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn day(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

async fn subscribe(client: &mut NotificationsClient, channels: &[&str]) {
    client
        .create_subscription(npb::CreateSubscriptionRequest {
            request_id: request_id(),
            channels: channels
                .iter()
                .map(|c| npb::ChannelFilter {
                    channel: (*c).to_owned(),
                    filters: Default::default(),
                })
                .collect(),
            delivery: Some(Delivery::Inbox(npb::InboxDelivery {})),
        })
        .await
        .unwrap_or_else(|e| panic!("inbox subscription to {channels:?}: {e:?}"));
}

async fn inbox(client: &mut NotificationsClient) -> Vec<Event> {
    client
        .list_inbox(npb::ListInboxRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list inbox")
        .into_inner()
        .items
        .into_iter()
        .filter_map(|i| i.event)
        .collect()
}

/// What reintegration's relay could not publish yet, with the reason it was given.
async fn unpublished(suite: &Harness) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT event_type, last_error FROM reintegration.outbox \
         WHERE published_at IS NULL ORDER BY occurred_at, event_id",
    )
    .fetch_all(&suite.pool)
    .await
    .expect("unpublished events")
}

/// The inbox once one of its events satisfies `wanted`, within 30 s.
async fn inbox_with(
    suite: &Harness,
    client: &mut NotificationsClient,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = inbox(client).await;
        if events.iter().any(&wanted) {
            return events;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "not within 30 s: {what}; the inbox holds {:?}; reintegration's outbox has not \
                 published {:?}",
                events
                    .iter()
                    .map(|e| format!("{}.{} {:?}", e.channel, e.action, e.attributes))
                    .collect::<Vec<_>>(),
                unpublished(suite).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until reintegration's outbox has nothing left to publish, within 30 s.
async fn outbox_published(suite: &Harness) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lag = zvv_platform::relay::lag(&suite.pool, zvv_reintegration::SCHEMA)
            .await
            .expect("outbox lag");
        if lag.unpublished == 0 {
            return;
        }
        let errors = unpublished(suite).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "reintegration's outbox is not published within 30 s: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text-like and bytea columns of the tables in schema `reintegration` (as
/// `table.column`) of which a row holds `needle` (as text, or as bytes), and the number of
/// columns scanned.
async fn columns_holding(suite: &Harness, needle: &str) -> (usize, Vec<String>) {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = 'reintegration' AND t.table_type = 'BASE TABLE' \
           AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', \
                               'ARRAY', 'bytea') \
         ORDER BY 1, 2",
    )
    .fetch_all(&suite.pool)
    .await
    .expect("columns of schema reintegration");
    let tables: std::collections::BTreeSet<&str> =
        columns.iter().map(|(t, _, _)| t.as_str()).collect();
    for expected in [
        "audit_entries",
        "detentions",
        "idempotency",
        "outbox",
        "tasks",
    ] {
        assert!(tables.contains(expected), "{expected} in {tables:?}");
    }
    let mut holding = Vec::new();
    for (table, column, data_type) in &columns {
        for name in [table, column] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "plain name {name}"
            );
        }
        let rows: i64 = if data_type == "bytea" {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM reintegration.{table} \
                 WHERE position($1::bytea IN {column}) > 0"
            )))
            .bind(needle.as_bytes())
            .fetch_one(&suite.pool)
            .await
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM reintegration.{table} WHERE strpos({column}::text, $1) > 0"
            )))
            .bind(needle)
            .fetch_one(&suite.pool)
            .await
        }
        .unwrap_or_else(|e| panic!("scan reintegration.{table}.{column}: {e}"));
        if rows > 0 {
            holding.push(format!("{table}.{column} ({data_type})"));
        }
    }
    (columns.len(), holding)
}

fn is_deadline(e: &Event, action: &str, condition: &str, detention_id: &str) -> bool {
    e.channel == "reintegration.deadlines"
        && e.action == action
        && e.attributes.get("condition").map(String::as_str) == Some(condition)
        && e.attributes.get("detention_id").map(String::as_str) == Some(detention_id)
}

#[tokio::test]
async fn a_detention_warns_the_municipality_and_the_partner_with_the_task_and_nobody_else() {
    let suite = Harness::start().await.expect("suite starts");
    let bsn = zvv_devkit::testkit::valid_bsn(855);
    let prison = suite.token("pi-vught", OrgType::Prison, &[Role::Professional]);
    let coordinator = suite.keys.token_in(
        "gm0855",
        OrgType::Municipality,
        &[Role::Coordinator],
        &[MUNICIPALITY],
    );
    let partner = suite.keys.token_in(
        PARTNER,
        OrgType::Probation,
        &[Role::Professional],
        &[MUNICIPALITY],
    );
    let amsterdam = suite.keys.token_in(
        "gm0363",
        OrgType::Municipality,
        &[Role::Coordinator],
        &["GM0363"],
    );
    let all = [
        "reintegration.detentions",
        "reintegration.conditions",
        "reintegration.tasks",
        "reintegration.deadlines",
    ];
    let mut amsterdam_inbox = suite.notifications(&amsterdam).unwrap();
    subscribe(&mut amsterdam_inbox, &all).await;
    let mut partner_inbox = suite.notifications(&partner).unwrap();
    subscribe(
        &mut partner_inbox,
        &["reintegration.tasks", "reintegration.deadlines"],
    )
    .await;

    // the prison records the start, by BSN, for GM0855
    let today = suite.clock.today();
    let recorded = suite
        .detentions(&prison)
        .unwrap()
        .record_detention_event(rpb::RecordDetentionEventRequest {
            request_id: request_id(),
            external_ref: "PI-VUGHT-2026-0001".into(),
            subject: Some(DetentionSubject::Bsn(bsn.clone())),
            birth_date: "1990-03-14".into(),
            kind: rpb::DetentionEventKind::Begin.into(),
            institution_code: "PI-VUGHT".into(),
            institution_type: rpb::InstitutionType::Pi.into(),
            occurred_on: day(today),
            expected_release_on: day(today + chrono::Duration::days(60)),
            municipality_code: MUNICIPALITY.into(),
        })
        .await
        .expect("the prison records the start")
        .into_inner();
    assert!(!recorded.duplicate);
    let detention = recorded.detention.expect("the episode");
    assert_eq!(detention.municipality_code, MUNICIPALITY);
    assert_eq!(detention.status(), rpb::DetentionStatus::Detained);
    assert!(detention.begin_received);
    // intake registered the person; reintegration has its subject id
    let registered: Option<String> = sqlx::query_scalar(
        "SELECT municipality_code FROM intake.subjects WHERE subject_id = $1::uuid",
    )
    .bind(&detention.subject_id)
    .fetch_optional(&suite.pool)
    .await
    .expect("intake's subjects");
    assert_eq!(
        registered.as_deref(),
        Some(MUNICIPALITY),
        "intake registered the person of the detention"
    );

    // the municipality subscribes to the warnings; a day later the monitor warns it
    let mut municipality_inbox = suite.notifications(&coordinator).unwrap();
    subscribe(&mut municipality_inbox, &["reintegration.deadlines"]).await;
    suite.clock.advance(chrono::Duration::days(1));
    let report = suite.run_deadline_monitor().await.expect("monitor runs");
    assert!(report.upcoming >= 1, "{report:?}");
    // care for dependants is checked within a working day: due today or later, warned now
    let events = inbox_with(
        &suite,
        &mut municipality_inbox,
        "the municipality is warned about care for dependants",
        |e| {
            is_deadline(
                e,
                "approaching",
                "CARE_FOR_DEPENDANTS",
                &detention.detention_id,
            )
        },
    )
    .await;
    let warning = events
        .iter()
        .find(|e| {
            is_deadline(
                e,
                "approaching",
                "CARE_FOR_DEPENDANTS",
                &detention.detention_id,
            )
        })
        .unwrap();
    assert_eq!(warning.source, "reintegration");
    assert_eq!(warning.attributes["municipality_code"], MUNICIPALITY);
    assert!(
        !warning.attributes.contains_key("task_id"),
        "nobody has the task yet: {warning:?}"
    );

    // a coordinator of the municipality gives the income condition to the probation office
    let mut continuity = suite.continuity(&coordinator).unwrap();
    let plan = continuity
        .get_plan(rpb::GetPlanRequest {
            detention_id: detention.detention_id.clone(),
        })
        .await
        .expect("the municipality reads the plan")
        .into_inner()
        .plan
        .expect("a plan");
    let income = plan
        .conditions
        .iter()
        .find(|c| c.kind() == rpb::ConditionKind::Income)
        .expect("an income condition")
        .clone();
    let first = income.actions.first().expect("an income action").clone();
    assert!(!first.warned, "not warned yet: {first:?}");
    let due_on = NaiveDate::parse_from_str(&first.due_on, "%Y-%m-%d").expect("a due date");
    let task = continuity
        .assign_task(rpb::AssignTaskRequest {
            request_id: request_id(),
            condition_id: income.condition_id.clone(),
            organisation: PARTNER.into(),
            organisation_type: "PROBATION".into(),
            contact: Some(rpb::Contact {
                name: "J. de Wit".into(),
                phone: "+31 73 555 0100".into(),
                email: "j.dewit@reclassering.example.nl".into(),
            }),
        })
        .await
        .expect("the coordinator assigns the condition")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(task.organisation, PARTNER);
    let events = inbox_with(
        &suite,
        &mut partner_inbox,
        "the partner gets the task",
        |e| e.channel == "reintegration.tasks" && e.action == "assigned",
    )
    .await;
    let assigned = events
        .iter()
        .find(|e| e.action == "assigned")
        .expect("assigned");
    assert_eq!(assigned.resource_id, task.task_id);
    assert_eq!(assigned.attributes["condition"], "INCOME");
    assert_eq!(assigned.attributes["condition_id"], income.condition_id);
    // the partner sees its task
    let tasks = suite
        .continuity(&partner)
        .unwrap()
        .list_tasks(rpb::ListTasksRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("the partner lists its tasks")
        .into_inner()
        .tasks;
    assert_eq!(
        tasks.iter().map(|t| &t.task_id).collect::<Vec<_>>(),
        [&task.task_id]
    );

    // the clock reaches the warning period of the income action: the task holder is warned
    let warn_from = zvv_platform::calendar::subtract_working_days(
        due_on,
        zvv_reintegration::DEFAULT_WARN_WORKING_DAYS,
    );
    assert!(
        warn_from > suite.clock.today(),
        "{warn_from} is still ahead"
    );
    let now = suite.clock.now();
    suite.clock.set(warn_from.and_time(now.time()).and_utc());
    let report = suite.run_deadline_monitor().await.expect("monitor runs");
    assert!(report.upcoming >= 1, "{report:?}");
    let events = inbox_with(
        &suite,
        &mut partner_inbox,
        "the partner is warned about the income action",
        |e| is_deadline(e, "approaching", "INCOME", &detention.detention_id),
    )
    .await;
    let approaching = events
        .iter()
        .position(|e| is_deadline(e, "approaching", "INCOME", &detention.detention_id))
        .unwrap();
    let assigned_at = events.iter().position(|e| e.action == "assigned").unwrap();
    assert!(assigned_at < approaching, "the task came first: {events:?}");
    let warning = &events[approaching];
    assert_eq!(warning.attributes["task_id"], task.task_id);
    assert_eq!(warning.attributes["condition_id"], income.condition_id);
    // only what names the partner: no municipality's warnings, no other condition
    assert!(
        events
            .iter()
            .all(|e| e.attributes.get("condition").map(String::as_str) == Some("INCOME")),
        "{events:?}"
    );

    // everything is published: another municipality got nothing of it
    outbox_published(&suite).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox(&mut amsterdam_inbox).await, Vec::<Event>::new());
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications.inbox WHERE organisation = $1")
            .bind("gm0363")
            .fetch_one(&suite.pool)
            .await
            .expect("inbox items of gm0363");
    assert_eq!(stored, 0);
    // the municipality did not get the partner's warning (it has the task)
    let municipality_events = inbox(&mut municipality_inbox).await;
    assert!(
        !municipality_events.iter().any(|e| is_deadline(
            e,
            "approaching",
            "INCOME",
            &detention.detention_id
        )),
        "{municipality_events:?}"
    );

    // nowhere in reintegration's schema is the BSN, in any text or bytea column (the scan
    // does find what is stored, such as the prison's reference of the episode)
    let (scanned, holding) = columns_holding(&suite, &bsn).await;
    assert!(scanned > 20, "{scanned} columns scanned");
    assert_eq!(holding, Vec::<String>::new(), "columns holding the BSN");
    let (_, holding) = columns_holding(&suite, "PI-VUGHT-2026-0001").await;
    assert!(
        holding.iter().any(|c| c.starts_with("detentions.")),
        "{holding:?}"
    );
    suite.stop().await;
}
