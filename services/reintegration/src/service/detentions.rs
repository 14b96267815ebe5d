//! The logic of DetentionService: checks an event, makes sure the person exists in intake
//! (registering an unknown BSN with the municipality and birth date, so that no event is lost),
//! keeps only the subject id and records the event in its episode; shows episodes to the
//! responsible municipality and to the partners with a task in them.

use std::sync::Arc;

use chrono::NaiveDate;
use zvv_platform::{
    audit::CallContext,
    calendar::{optional_date, optional_past_date},
    clock::SharedClock,
    codes::MunicipalityCode,
    error::{ApiError, Violations, checked},
    idempotency::{self, FingerprintKey, Key},
    ids::parse_id,
    intake::{Intake, Lookup, NewSubjectFacts, SubjectInput, SubjectRef},
    paging::{Page, page_of, page_request},
};

use super::{Settings, found, viewer};
use crate::{
    domain::{
        Detention, DetentionEvent, EpisodeStatus, EventKind, InstitutionType, parse_external_ref,
        parse_institution_code,
    },
    store::{
        Begun, DetentionStore, NewEvent, RecordOutcome, RecordSettings, Recorded, Recording,
        Visible,
    },
};

/// What a RecordDetentionEvent request carries, unchecked.
#[derive(Debug, Clone)]
pub struct RecordInput {
    pub request_id: String,
    pub external_ref: String,
    pub subject: SubjectInput,
    pub birth_date: String,
    pub kind: Option<EventKind>,
    pub institution_code: String,
    pub institution_type: Option<InstitutionType>,
    pub occurred_on: String,
    pub expected_release_on: String,
    pub municipality_code: String,
}

/// A checked event.
struct Checked {
    external_ref: String,
    subject: SubjectRef,
    birth_date: Option<NaiveDate>,
    kind: EventKind,
    institution_code: String,
    institution_type: InstitutionType,
    occurred_on: NaiveDate,
    expected_release_on: Option<NaiveDate>,
    municipality: Option<MunicipalityCode>,
}

/// An episode as its viewer may see it: whole for the responsible municipality, for a partner
/// without the person's history and the plan's readiness.
fn as_seen(d: Visible<Detention>) -> Visible<Detention> {
    if d.whole {
        d
    } else {
        Visible {
            whole: false,
            item: d.item.for_partner(),
        }
    }
}

/// The context of the keyed mark that links a release to a later detention of the same person.
pub const RELEASE_MARK_CONTEXT: &str = "reintegration.release-mark";

pub struct DetentionLogic<S, I> {
    store: S,
    intake: I,
    clock: SharedClock,
    settings: Arc<Settings>,
    fingerprints: Arc<FingerprintKey>,
}

impl<S: DetentionStore, I: Intake> DetentionLogic<S, I> {
    pub fn new(
        store: S,
        intake: I,
        clock: SharedClock,
        settings: Arc<Settings>,
        fingerprints: Arc<FingerprintKey>,
    ) -> Self {
        Self {
            store,
            intake,
            clock,
            settings,
            fingerprints,
        }
    }

    fn parse(&self, input: &RecordInput) -> Result<Checked, ApiError> {
        let today = self.clock.today();
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, &input.request_id);
        let external_ref = v.check("external_ref", parse_external_ref(&input.external_ref));
        let subject = input.subject.parse(&mut v);
        let birth_date = optional_past_date("birth_date", &input.birth_date, today, &mut v);
        if input.kind.is_none() {
            v.add(
                "kind",
                "must be BEGIN, LEAVE_START, LEAVE_END, TRANSFER or END",
            );
        }
        let institution_code = v.check(
            "institution_code",
            parse_institution_code(&input.institution_code),
        );
        if input.institution_type.is_none() {
            v.add("institution_type", "must be PI or JJI");
        }
        let occurred_on = if input.occurred_on.is_empty() {
            v.add("occurred_on", "is required (YYYY-MM-DD)");
            None
        } else {
            optional_past_date("occurred_on", &input.occurred_on, today, &mut v)
        };
        let expected_release_on =
            optional_date("expected_release_on", &input.expected_release_on, &mut v);
        if let (Some(release), Some(on)) = (expected_release_on, occurred_on)
            && release < on
        {
            v.add("expected_release_on", "must not be before occurred_on");
        }
        let municipality = if input.municipality_code.is_empty() {
            None
        } else {
            v.check(
                "municipality_code",
                MunicipalityCode::parse(&input.municipality_code),
            )
        };
        let parsed = match (
            external_ref,
            subject,
            input.kind,
            institution_code,
            input.institution_type,
            occurred_on,
        ) {
            (
                Some(external_ref),
                Some(subject),
                Some(kind),
                Some(institution_code),
                Some(institution_type),
                Some(occurred_on),
            ) => Some(Checked {
                external_ref,
                subject,
                birth_date,
                kind,
                institution_code,
                institution_type,
                occurred_on,
                expected_release_on,
                municipality,
            }),
            _ => None,
        };
        checked(v, parsed)
    }

    /// Records one event. As for the other services' mutations, the transaction holding the
    /// idempotency key comes first (a retry is answered before intake is asked), then one
    /// intake call, then the event in that same transaction.
    pub async fn record(
        &self,
        ctx: &CallContext,
        input: RecordInput,
    ) -> Result<Recorded, ApiError> {
        let e = self.parse(&input)?;
        if let SubjectRef::Id(id) = e.subject {
            ctx.attach([id]);
        }
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "RecordDetentionEvent",
            &input.request_id,
            &[
                &e.external_ref,
                &e.subject.canonical(),
                &format!("{:?}", e.birth_date),
                e.kind.as_str(),
                &e.institution_code,
                e.institution_type.as_str(),
                &e.occurred_on.to_string(),
                &format!("{:?}", e.expected_release_on),
                e.municipality.as_ref().map_or("", |m| m.as_str()),
            ],
        );
        let now = self.clock.now();
        let recording = match self.store.begin_recording(ctx, &key, now).await? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(recording) => recording,
        };
        // an unknown BSN is registered: an event must never be lost because the person is new
        let create = NewSubjectFacts {
            municipality_code: e.municipality.as_ref().map(|m| m.as_str().to_owned()),
            birth_date: e.birth_date,
        };
        let user = ctx.end_user_or_caller();
        let subject_id = match self
            .intake
            .subject_context(&user, &e.subject, Some(&create))
            .await?
        {
            Lookup::Found(found) => found.subject_id,
            Lookup::Unknown { lookup_ref } => {
                ctx.attach(lookup_ref);
                return Err(ApiError::FailedPrecondition(
                    "intake does not know this subject: record the event by BSN, or register \
                     the person with intake"
                        .into(),
                ));
            }
        };
        ctx.attach([subject_id]);
        let event = NewEvent {
            external_ref: e.external_ref,
            subject_id,
            subject_mark: self
                .fingerprints
                .fingerprint(RELEASE_MARK_CONTEXT, &subject_id.to_string()),
            event: DetentionEvent {
                kind: e.kind,
                occurred_on: e.occurred_on,
                institution_code: e.institution_code,
                institution_type: e.institution_type,
                expected_release_on: e.expected_release_on,
                received_at: now,
            },
            municipality_code: e.municipality.map(MunicipalityCode::into_string),
            recorded_by: ctx.principal().org,
        };
        let settings = RecordSettings {
            follow_up_months: self.settings.follow_up_months,
        };
        match recording
            .record(ctx, event, &self.settings.policy, settings, &key, now)
            .await?
        {
            RecordOutcome::Recorded(recorded) => {
                ctx.attach([recorded.detention.id]);
                Ok(*recorded)
            }
            RecordOutcome::OtherSubject => Err(ApiError::FailedPrecondition(
                "external_ref names a detention episode of another person: every event of one \
                 episode names the same person"
                    .into(),
            )),
            RecordOutcome::MunicipalityRequired => Err(ApiError::invalid(
                "municipality_code",
                "is required on the first event of an episode: the responsible municipality, \
                 e.g. GM0855",
            )),
        }
    }

    pub async fn get(
        &self,
        ctx: &CallContext,
        detention_id: &str,
    ) -> Result<Visible<Detention>, ApiError> {
        let id = parse_id("detention_id", detention_id)?;
        ctx.attach([id]);
        let outcome = self
            .store
            .detention(ctx, &viewer(ctx), id, self.clock.now())
            .await?;
        found(outcome, "detention", id).map(as_seen)
    }

    pub async fn list(
        &self,
        ctx: &CallContext,
        status: Option<EpisodeStatus>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Visible<Detention>>, ApiError> {
        let (size, after) = page_request(page_size, page_token)?;
        let items = self
            .store
            .list_detentions(ctx, &viewer(ctx), status, after, size + 1, self.clock.now())
            .await?;
        let page = page_of(items, size, |d| d.item.id);
        Ok(Page {
            items: page.items.into_iter().map(as_seen).collect(),
            next: page.next,
        })
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }
}
