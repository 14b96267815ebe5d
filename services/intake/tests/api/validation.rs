//! Every validation rule of RegisterSubject and GetSubject: INVALID_ARGUMENT with a
//! `google.rpc.BadRequest` violation naming the field, and nothing stored.

use tonic::Code;
use zvv_proto::intake::v1 as pb;

use crate::helpers::{
    BSN, TestApp, assert_invalid, expect_err, register_request, valid_bsn, violation_fields,
};

/// Sends each changed request and expects INVALID_ARGUMENT naming `field`.
async fn expect_invalid(
    app: &TestApp,
    field: &str,
    cases: Vec<(&str, pb::RegisterSubjectRequest)>,
) {
    let mut client = app.client(&app.muni_professional());
    for (case, request) in cases {
        let status = expect_err(client.register_subject(request).await, case);
        assert_invalid(&status, field, case);
    }
    assert_eq!(app.count_subjects().await, 0, "{field}: nothing is stored");
}

fn with(f: impl FnOnce(&mut pb::RegisterSubjectRequest)) -> pb::RegisterSubjectRequest {
    let mut r = register_request(BSN, "Sanne");
    f(&mut r);
    r
}

#[tokio::test]
async fn bsn_must_be_nine_digits_passing_the_elfproef() {
    let app = TestApp::spawn().await;
    let cases = vec![
        ("empty", with(|r| r.bsn = String::new())),
        ("8 digits", with(|r| r.bsn = "12345678".into())),
        ("10 digits", with(|r| r.bsn = "1234567820".into())),
        ("letters", with(|r| r.bsn = "12345678a".into())),
        ("spaces", with(|r| r.bsn = " 123456782".into())),
        ("elfproef", with(|r| r.bsn = "123456789".into())),
        ("all zeros", with(|r| r.bsn = "000000000".into())),
    ];
    let mut client = app.client(&app.muni_professional());
    for (case, request) in &cases {
        let status = expect_err(client.register_subject(request.clone()).await, case);
        if !request.bsn.is_empty() {
            assert!(
                !status.message().contains(request.bsn.trim()),
                "{case}: the BSN is not echoed: {}",
                status.message()
            );
        }
    }
    expect_invalid(&app, "bsn", cases).await;
}

#[tokio::test]
async fn names_must_be_1_to_200_characters_without_control_characters() {
    let app = TestApp::spawn().await;
    for field in ["given_name", "family_name"] {
        let set = |value: String| {
            with(move |r| {
                if field == "given_name" {
                    r.given_name = value;
                } else {
                    r.family_name = value;
                }
            })
        };
        expect_invalid(
            &app,
            field,
            vec![
                ("empty", set(String::new())),
                ("blank", set("   ".into())),
                ("201 chars", set("a".repeat(201))),
                ("201 non-ASCII chars", set("é".repeat(201))),
                ("newline", set("Jan\nJansen".into())),
                ("NUL", set("Jan\u{0}".into())),
                ("escape", set("Jan\u{1b}[31m".into())),
                ("DEL", set("Jan\u{7f}".into())),
            ],
        )
        .await;
    }

    // the edges that are allowed
    let mut client = app.client(&app.muni_professional());
    client
        .register_subject(with(|r| r.given_name = "é".repeat(200)))
        .await
        .expect("200 characters are allowed");
    client
        .register_subject(pb::RegisterSubjectRequest {
            family_name: "d'Ancona-van der Berg".into(),
            given_name: "Zoë".into(),
            ..register_request(&valid_bsn(0), "")
        })
        .await
        .expect("apostrophes, hyphens and diacritics are allowed");
}

#[tokio::test]
async fn birth_date_must_be_a_real_past_date_within_120_years() {
    let app = TestApp::spawn().await;
    // the service clock stands at 2026-06-15
    expect_invalid(
        &app,
        "birth_date",
        vec![
            ("empty", with(|r| r.birth_date = String::new())),
            ("not a date", with(|r| r.birth_date = "yesterday".into())),
            ("day first", with(|r| r.birth_date = "14-03-2015".into())),
            ("no padding", with(|r| r.birth_date = "2015-3-14".into())),
            ("30 February", with(|r| r.birth_date = "2023-02-30".into())),
            ("month 13", with(|r| r.birth_date = "2015-13-01".into())),
            ("tomorrow", with(|r| r.birth_date = "2026-06-16".into())),
            ("far future", with(|r| r.birth_date = "2999-01-01".into())),
            (
                "121 years ago",
                with(|r| r.birth_date = "1905-06-15".into()),
            ),
            (
                "120 years and a day",
                with(|r| r.birth_date = "1906-06-14".into()),
            ),
        ],
    )
    .await;

    let mut client = app.client(&app.muni_professional());
    for (n, date) in ["2026-06-15", "1906-06-15", "2024-02-29"]
        .iter()
        .enumerate()
    {
        client
            .register_subject(pb::RegisterSubjectRequest {
                birth_date: (*date).into(),
                ..register_request(&valid_bsn(n), "Rand")
            })
            .await
            .unwrap_or_else(|s| panic!("{date} is allowed: {s:?}"));
    }
}

#[tokio::test]
async fn the_120_year_limit_follows_the_service_clock() {
    let app = TestApp::spawn().await;
    // on a leap day whose date 120 years earlier does not exist (1900 was no leap year)
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2020-02-29T12:00:00Z")
            .expect("date")
            .with_timezone(&chrono::Utc),
    );
    let mut client = app.client(&app.muni_professional());
    client
        .register_subject(pb::RegisterSubjectRequest {
            birth_date: "1900-03-01".into(),
            ..register_request(&valid_bsn(0), "Oud")
        })
        .await
        .expect("just under 120 years");
    let status = expect_err(
        client
            .register_subject(pb::RegisterSubjectRequest {
                birth_date: "1900-02-27".into(),
                ..register_request(&valid_bsn(1), "Ouder")
            })
            .await,
        "over 120 years",
    );
    assert_invalid(&status, "birth_date", "over 120 years");
    // and "the future" is the clock's future, not the wall clock's
    let status = expect_err(
        client
            .register_subject(pb::RegisterSubjectRequest {
                birth_date: "2020-03-01".into(),
                ..register_request(&valid_bsn(2), "Later")
            })
            .await,
        "after the clock's today",
    );
    assert_invalid(&status, "birth_date", "after the clock's today");
}

#[tokio::test]
async fn municipality_and_neighbourhood_codes_have_their_shapes() {
    let app = TestApp::spawn().await;
    expect_invalid(
        &app,
        "municipality_code",
        vec![
            ("empty", with(|r| r.municipality_code = String::new())),
            ("3 digits", with(|r| r.municipality_code = "GM363".into())),
            ("5 digits", with(|r| r.municipality_code = "GM03630".into())),
            (
                "lower case",
                with(|r| r.municipality_code = "gm0363".into()),
            ),
            (
                "other prefix",
                with(|r| r.municipality_code = "XX0363".into()),
            ),
            ("letter", with(|r| r.municipality_code = "GM03a3".into())),
        ],
    )
    .await;
    expect_invalid(
        &app,
        "neighbourhood_code",
        vec![
            ("empty", with(|r| r.neighbourhood_code = String::new())),
            (
                "5 digits",
                with(|r| r.neighbourhood_code = "WK03630".into()),
            ),
            (
                "7 digits",
                with(|r| r.neighbourhood_code = "WK0363055".into()),
            ),
            (
                "buurt code",
                with(|r| r.neighbourhood_code = "BU036305".into()),
            ),
            (
                "letter O",
                with(|r| r.neighbourhood_code = "WK0363O5".into()),
            ),
            (
                "outside the municipality",
                with(|r| {
                    r.municipality_code = "GM0363".into();
                    r.neighbourhood_code = "WK034401".into();
                }),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn request_id_is_required_and_visible_ascii() {
    let app = TestApp::spawn().await;
    expect_invalid(
        &app,
        "request_id",
        vec![
            ("missing", with(|r| r.request_id = String::new())),
            ("space", with(|r| r.request_id = "has space".into())),
            ("129 chars", with(|r| r.request_id = "x".repeat(129))),
            ("non-ASCII", with(|r| r.request_id = "aanvraag-é".into())),
        ],
    )
    .await;
}

#[tokio::test]
async fn all_violations_are_reported_at_once() {
    let app = TestApp::spawn().await;
    let status = expect_err(
        app.client(&app.muni_professional())
            .register_subject(pb::RegisterSubjectRequest::default())
            .await,
        "empty request",
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violation_fields(&status);
    fields.sort();
    fields.dedup();
    assert_eq!(
        fields,
        [
            "birth_date",
            "bsn",
            "family_name",
            "given_name",
            "municipality_code",
            "neighbourhood_code",
            "request_id"
        ]
    );
}

#[tokio::test]
async fn get_refuses_malformed_ids_and_reports_unknown_ones() {
    let app = TestApp::spawn().await;
    let registered = app.register(BSN, "Sanne").await;
    let mut client = app.client(&app.muni_professional());
    let id = uuid::Uuid::try_parse(&registered.subject_id).expect("uuid");
    for bad in [
        String::new(),
        "not-a-uuid".to_owned(),
        id.simple().to_string(),
        format!("{{{id}}}"),
        format!("{id}0"),
        "'; DROP TABLE intake.subjects; --".to_owned(),
    ] {
        let status = expect_err(
            client
                .get_subject(pb::GetSubjectRequest {
                    subject_id: bad.clone(),
                })
                .await,
            &bad,
        );
        assert_invalid(&status, "subject_id", &bad);
    }
    let status = expect_err(
        client
            .get_subject(pb::GetSubjectRequest {
                subject_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        "unknown id",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(app.count_subjects().await, 1);
}
