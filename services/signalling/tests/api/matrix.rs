//! The jurisdiction matrix of SignalService, ReferralService and the EventSink, generated from
//! their policy tables: every RPC called by a caller of the child's own municipality, of another
//! municipality, with no jurisdiction, of an organisation type and of a role the table does not
//! grant, and by a suite service. The signalling index is national (own, other and no
//! jurisdiction are alike); referrals and statistics are not. A new RPC without its row fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use tonic::Status;
use zvv_devkit::testkit::matrix::{self, Caller, DENIED, HIDDEN, NOT_FOUND, OK, Row};
use zvv_platform::policy::Policy;
use zvv_proto::signalling::v1 as pb;
use zvv_signalling::policy::{REFERRAL_SERVICE, SIGNAL_SERVICE};

use crate::helpers::{
    Org, POLICE, TODAY, TestApp, YOUTH_HEALTH, by_subject, contact, referral_on, request_id,
    valid_bsn,
};

const OWN: &str = "GM0363";
const OTHER: &str = "GM0758";
/// The organisation of the allowed callers (their data belong to it).
const ORG: &str = "org-under-test";

/// Columns: own municipality, other municipality, no jurisdiction, wrong org type, wrong role,
/// suite service.
const ROWS: &[Row] = &[
    Row {
        method: "RegisterSignal",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "CloseSignal",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetSignal",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ListSignals",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "RecordInformationDuty",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "ListMatches",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetMatch",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "AssignCoordinator",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "MarkCoordinated",
        expect: [OK, OK, OK, DENIED, DENIED, DENIED],
    },
    Row {
        method: "GetSignalStatistics",
        expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
    },
    Row {
        method: "SubmitReferral",
        expect: [OK, OK, OK, DENIED, DENIED, OK],
    },
    Row {
        method: "ListReferrals",
        expect: [OK, HIDDEN, HIDDEN, DENIED, DENIED, DENIED],
    },
    Row {
        method: "DecideReferral",
        expect: [OK, NOT_FOUND, NOT_FOUND, DENIED, DENIED, DENIED],
    },
    Row {
        method: "Deliver",
        expect: [DENIED, DENIED, DENIED, DENIED, DENIED, OK],
    },
];

struct Fixture {
    app: TestApp,
    /// A child of GM0363 signalled by [`ORG`] and by youth health care (so in a match).
    child: String,
    signal: String,
    match_id: String,
    /// A referral routed to GM0363.
    referral: String,
    next_bsn: AtomicUsize,
}

/// The organisation the allowed callers of signal RPCs belong to, as the helpers name one.
const SIGNALLER: Org = Org {
    name: ORG,
    org_type: zvv_platform::auth::OrgType::School,
    role: zvv_platform::auth::Role::Professional,
};

impl Fixture {
    async fn fresh_child(&self) -> String {
        self.app
            .child(&valid_bsn(self.next_bsn.fetch_add(1, Ordering::SeqCst)))
            .await
    }

    /// A new active signal of [`ORG`].
    async fn fresh_signal(&self) -> String {
        let child = self.fresh_child().await;
        self.app
            .signal(SIGNALLER, &child)
            .await
            .signal
            .expect("signal")
            .signal_id
    }

    /// A new referral awaiting triage in GM0363.
    async fn fresh_referral(&self) -> String {
        let child = self.fresh_child().await;
        self.app
            .referrals_with(&self.app.token(POLICE))
            .submit_referral(referral_on(&child))
            .await
            .expect("police refer")
            .into_inner()
            .referral
            .expect("referral")
            .referral_id
    }

    async fn call(&self, method: &str, caller: &Caller, token: &str) -> Result<bool, Status> {
        let mut signals = self.app.client_with(token);
        let mut referrals = self.app.referrals_with(token);
        let org = Org {
            name: ORG,
            org_type: caller.org_type,
            role: caller.role,
        };
        match method {
            "RegisterSignal" => {
                let child = self.fresh_child().await;
                Ok(signals
                    .register_signal(by_subject(&child, org))
                    .await?
                    .into_inner()
                    .signal
                    .is_some())
            }
            "CloseSignal" => {
                let signal = self.fresh_signal().await;
                Ok(signals
                    .close_signal(pb::CloseSignalRequest {
                        request_id: request_id(),
                        signal_id: signal.clone(),
                        reason: pb::CloseReason::RiskGone as i32,
                    })
                    .await?
                    .into_inner()
                    .signal
                    .is_some_and(|s| s.signal_id == signal))
            }
            "GetSignal" => Ok(signals
                .get_signal(pb::GetSignalRequest {
                    signal_id: self.signal.clone(),
                })
                .await?
                .into_inner()
                .signal
                .is_some_and(|s| s.subject_id == self.child)),
            "ListSignals" => Ok(signals
                .list_signals(pb::ListSignalsRequest::default())
                .await?
                .into_inner()
                .signals
                .iter()
                .any(|s| s.signal_id == self.signal)),
            "RecordInformationDuty" => Ok(signals
                .record_information_duty(pb::RecordInformationDutyRequest {
                    request_id: request_id(),
                    signal_id: self.signal.clone(),
                    parents_informed_on: TODAY.into(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .signal
                .is_some()),
            "ListMatches" => Ok(signals
                .list_matches(pb::ListMatchesRequest::default())
                .await?
                .into_inner()
                .matches
                .iter()
                .any(|m| m.match_id == self.match_id)),
            "GetMatch" => Ok(signals
                .get_match(pb::GetMatchRequest {
                    match_id: self.match_id.clone(),
                })
                .await?
                .into_inner()
                .r#match
                .is_some()),
            "AssignCoordinator" => Ok(signals
                .assign_coordinator(pb::AssignCoordinatorRequest {
                    request_id: request_id(),
                    match_id: self.match_id.clone(),
                    organisation: ORG.into(),
                    contact: Some(contact(SIGNALLER)),
                })
                .await?
                .into_inner()
                .r#match
                .is_some()),
            "MarkCoordinated" => Ok(signals
                .mark_coordinated(pb::MarkCoordinatedRequest {
                    request_id: request_id(),
                    match_id: self.match_id.clone(),
                })
                .await?
                .into_inner()
                .r#match
                .is_some_and(|m| m.coordinated)),
            "GetSignalStatistics" => signals
                .get_signal_statistics(pb::GetSignalStatisticsRequest {
                    municipality_code: OWN.into(),
                    from_month: TODAY[..7].into(),
                    to_month: TODAY[..7].into(),
                })
                .await
                .map(|_| true),
            "SubmitReferral" => {
                let child = self.fresh_child().await;
                Ok(referrals
                    .submit_referral(referral_on(&child))
                    .await?
                    .into_inner()
                    .referral
                    .is_some())
            }
            "ListReferrals" => Ok(referrals
                .list_referrals(pb::ListReferralsRequest::default())
                .await?
                .into_inner()
                .referrals
                .iter()
                .any(|r| r.referral_id == self.referral)),
            "DecideReferral" => {
                let referral = self.fresh_referral().await;
                Ok(referrals
                    .decide_referral(pb::DecideReferralRequest {
                        request_id: request_id(),
                        referral_id: referral,
                        decision: pb::ReferralDecision::NoAction as i32,
                        rationale: "al bekend bij het wijkteam".into(),
                    })
                    .await?
                    .into_inner()
                    .referral
                    .is_some())
            }
            "Deliver" => {
                // an event signalling takes without a change, new each time
                let subject = uuid::Uuid::now_v7().to_string();
                let mut sink = self.app.sink_with(token);
                Ok(!sink
                    .deliver(zvv_proto::events::v1::DeliverRequest {
                        event: Some(zvv_proto::events::v1::Event {
                            event_id: uuid::Uuid::now_v7().to_string(),
                            source: "intake".into(),
                            channel: "intake.subjects".into(),
                            resource: "subject".into(),
                            resource_id: subject.clone(),
                            action: "registered".into(),
                            attributes: [("subject_id".to_owned(), subject)].into(),
                            ..Default::default()
                        }),
                        subscription_id: String::new(),
                    })
                    .await?
                    .into_inner()
                    .duplicate)
            }
            other => panic!("the matrix has no call for {other}: add one"),
        }
    }
}

const POLICIES: [&Policy; 3] = [
    &SIGNAL_SERVICE,
    &REFERRAL_SERVICE,
    &zvv_platform::sink::POLICY,
];

#[test]
fn every_rpc_has_rows_in_the_matrix() {
    for policy in POLICIES {
        let rows: Vec<Row> = ROWS
            .iter()
            .filter(|r| policy.rule(r.method).is_some())
            .copied()
            .collect();
        matrix::check_coverage(policy, &rows).expect("matrix covers the policy table");
    }
    let known = |m: &str| POLICIES.iter().any(|p| p.rule(m).is_some());
    assert!(ROWS.iter().all(|r| known(r.method)), "a row names no RPC");
}

#[tokio::test]
async fn jurisdiction_matrix() {
    let app = TestApp::spawn().await;
    let mut fixture = Fixture {
        app,
        child: String::new(),
        signal: String::new(),
        match_id: String::new(),
        referral: String::new(),
        next_bsn: AtomicUsize::new(100),
    };
    fixture.child = fixture.fresh_child().await;
    fixture.signal = fixture
        .app
        .signal(SIGNALLER, &fixture.child)
        .await
        .signal
        .expect("signal")
        .signal_id;
    fixture.match_id = fixture
        .app
        .signal(YOUTH_HEALTH, &fixture.child)
        .await
        .matches
        .first()
        .expect("a client match")
        .match_id
        .clone();
    fixture.referral = fixture.fresh_referral().await;
    // a coordinator for MarkCoordinated
    fixture
        .app
        .client(SIGNALLER)
        .assign_coordinator(pb::AssignCoordinatorRequest {
            request_id: request_id(),
            match_id: fixture.match_id.clone(),
            organisation: ORG.into(),
            contact: Some(contact(SIGNALLER)),
        })
        .await
        .expect("coordinator");

    let setup = matrix::Setup {
        keys: &fixture.app.keys,
        service: zvv_signalling::SCHEMA.name(),
        org: ORG,
        own: OWN,
        other: OTHER,
    };
    matrix::run(setup, &POLICIES, ROWS, async |method, caller, token| {
        fixture.call(method, caller, token).await
    })
    .await;
}
