//! Organisation isolation: another organisation reads, lists and closes none of a signal, and
//! sees no match it is not in.

use tonic::Code;
use zvv_proto::signalling::v1 as pb;

use crate::helpers::{
    POLICE, SCHOOL, TEAM, TestApp, YOUTH_HEALTH, assert_code, expect_err, request_id, valid_bsn,
};

#[tokio::test]
async fn another_organisation_can_read_none_of_a_signal_or_match() {
    let app = TestApp::spawn().await;
    let subject = app.child(&valid_bsn(1)).await;
    let school = app.signal(SCHOOL, &subject).await;
    let signal_id = school.signal.expect("signal").signal_id;
    let health = app.signal(YOUTH_HEALTH, &subject).await;
    let health_signal = health.signal.expect("signal").signal_id;
    let match_id = health.matches.first().expect("match").match_id.clone();

    // the police has nothing on this child: no signal, no match, no listing
    let mut police = app.client(POLICE);
    let status = assert_code(
        police
            .get_signal(pb::GetSignalRequest {
                signal_id: signal_id.clone(),
            })
            .await,
        Code::NotFound,
        "GetSignal of another organisation",
    );
    assert!(
        !status.message().contains(&subject) && !status.message().contains(SCHOOL.name),
        "the error tells nothing: {status:?}"
    );
    // not distinguishable from a signal that does not exist
    assert_code(
        police
            .get_signal(pb::GetSignalRequest {
                signal_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        Code::NotFound,
        "GetSignal of nothing",
    );
    assert_code(
        police
            .close_signal(pb::CloseSignalRequest {
                request_id: request_id(),
                signal_id: signal_id.clone(),
                reason: pb::CloseReason::Unjustified as i32,
            })
            .await,
        Code::NotFound,
        "CloseSignal of another organisation",
    );
    assert_code(
        police
            .get_match(pb::GetMatchRequest {
                match_id: match_id.clone(),
            })
            .await,
        Code::NotFound,
        "GetMatch of a match the police is not in",
    );
    let listed = app
        .list_signals(POLICE, pb::SignalStatus::Unspecified, 0)
        .await;
    assert!(listed.is_empty(), "{listed:?}");
    assert!(app.list_matches(POLICE).await.is_empty());

    // the signal is untouched by the refused close
    let still = app
        .client(SCHOOL)
        .get_signal(pb::GetSignalRequest {
            signal_id: signal_id.clone(),
        })
        .await
        .expect("owner reads")
        .into_inner()
        .signal
        .expect("signal");
    assert_eq!(still.status, pb::SignalStatus::Active as i32);

    // a participant of the match still reads only its own signal directly
    assert_code(
        app.client(SCHOOL)
            .get_signal(pb::GetSignalRequest {
                signal_id: health_signal.clone(),
            })
            .await,
        Code::NotFound,
        "GetSignal of a fellow participant's signal",
    );
    assert_code(
        app.client(SCHOOL)
            .close_signal(pb::CloseSignalRequest {
                request_id: request_id(),
                signal_id: health_signal.clone(),
                reason: pb::CloseReason::Unjustified as i32,
            })
            .await,
        Code::NotFound,
        "CloseSignal of a fellow participant's signal",
    );
    let own: Vec<String> = app
        .list_signals(SCHOOL, pb::SignalStatus::Unspecified, 0)
        .await
        .into_iter()
        .map(|s| s.signal_id)
        .collect();
    assert_eq!(
        own,
        std::slice::from_ref(&signal_id),
        "the school lists only its own signal"
    );

    // the police's own match on another child is invisible to the school
    let other = app.child(&valid_bsn(2)).await;
    app.signal(POLICE, &other).await;
    let theirs = app.signal(TEAM, &other).await;
    let their_match = theirs.matches.first().expect("match").match_id.clone();
    let status = expect_err(
        app.client(SCHOOL)
            .get_match(pb::GetMatchRequest {
                match_id: their_match.clone(),
            })
            .await,
        "GetMatch of another match",
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let school_matches: Vec<String> = app
        .list_matches(SCHOOL)
        .await
        .into_iter()
        .map(|m| m.match_id)
        .collect();
    assert_eq!(
        school_matches,
        [match_id],
        "only the match the school is in"
    );
}
