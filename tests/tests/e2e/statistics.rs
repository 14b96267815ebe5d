use zvv_e2e::Harness;
use zvv_platform::auth::{OrgType, Role};
use zvv_proto::{
    intake::v1::RegisterSubjectRequest,
    signalling::v1::{
        AgeBand, Contact, GetSignalStatisticsRequest, RegisterSignalRequest,
        register_signal_request::Subject,
    },
};

/// A valid BSN (elfproef) made from a number.
fn bsn(n: u32) -> Option<String> {
    let body = format!("{:08}", 30_000_000 + n * 13);
    let sum: u32 = body
        .bytes()
        .zip((2..=9).rev())
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    (sum % 11 < 10).then(|| format!("{body}{}", sum % 11))
}

/// The municipality's analyst sees counts per neighbourhood × age band × organisation type
/// over whole months; a cell below the threshold (5) is left out exactly as an empty cell is,
/// an analyst of another municipality gets nothing, and nobody else may ask.
#[tokio::test]
async fn statistics_count_subjects_and_leave_out_small_cells() {
    let suite = Harness::start().await.expect("suite starts");
    let muni = suite.token("gm0363", OrgType::Municipality, &[Role::Professional]);
    let school = suite.token("school-9", OrgType::School, &[Role::Professional]);
    let care = suite.token("jeugdzorg-1", OrgType::YouthCare, &[Role::Professional]);
    let mut intake = suite.intake(&muni).expect("client");
    let bsns: Vec<String> = (0..40).filter_map(bsn).take(8).collect();
    for (i, b) in bsns.iter().enumerate() {
        intake
            .register_subject(RegisterSubjectRequest {
                request_id: format!("child-{i}"),
                bsn: b.clone(),
                given_name: "Kind".into(),
                family_name: format!("Nummer {i}"),
                birth_date: "2016-01-01".into(),
                municipality_code: "GM0363".into(),
                neighbourhood_code: "WK036305".into(),
            })
            .await
            .expect("child registered");
        // six children signalled by the school, two by youth care
        let token = if i < 6 { &school } else { &care };
        suite
            .signalling(token)
            .expect("client")
            .register_signal(RegisterSignalRequest {
                request_id: format!("sig-{i}"),
                subject: Some(Subject::Bsn(b.clone())),
                contact: Some(Contact {
                    name: "Contact".into(),
                    phone: "+31 20 555 0100".into(),
                    email: "c@example.nl".into(),
                }),
                duration_months: 0,
            })
            .await
            .expect("signal");
    }

    let month = zvv_platform::clock::Clock::today(&suite.clock)
        .format("%Y-%m")
        .to_string();
    let request = GetSignalStatisticsRequest {
        municipality_code: "GM0363".into(),
        from_month: month.clone(),
        to_month: month,
    };
    let status = suite
        .signalling(&school)
        .expect("client")
        .get_signal_statistics(request.clone())
        .await
        .expect_err("professionals get no statistics");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // an analyst of another municipality (Almere) may not read Amsterdam's figures
    let almere = suite.token("gm0034", OrgType::Municipality, &[Role::Analyst]);
    let status = suite
        .signalling(&almere)
        .expect("client")
        .get_signal_statistics(request.clone())
        .await
        .expect_err("another municipality's statistics");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("GM0363"), "{}", status.message());

    let analyst = suite.token("gm0363", OrgType::Municipality, &[Role::Analyst]);
    let stats = suite
        .signalling(&analyst)
        .expect("client")
        .get_signal_statistics(request)
        .await
        .expect("statistics")
        .into_inner();
    assert_eq!(stats.threshold, 5);
    let cell = |org_type: &str| {
        stats
            .cells
            .iter()
            .find(|c| c.organisation_type == org_type)
            .unwrap_or_else(|| panic!("no {org_type} cell in {:?}", stats.cells))
    };
    let schools = cell("SCHOOL");
    assert_eq!(schools.neighbourhood_code, "WK036305");
    assert_eq!(schools.age_band, AgeBand::AgeBand411 as i32);
    assert_eq!(schools.subjects, 6);
    assert!(
        stats
            .cells
            .iter()
            .all(|c| c.organisation_type != "YOUTH_CARE"),
        "2 is below 5: left out, as an empty cell is: {:?}",
        stats.cells
    );
    assert!(stats.cells.iter().all(|c| c.subjects >= 5));
    suite.stop().await;
}
