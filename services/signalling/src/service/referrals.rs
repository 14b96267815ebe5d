//! The logic of ReferralService: checks submissions, makes sure the child exists in intake
//! (registering an unknown BSN with the given municipality and birth date, so that no referral
//! is lost), routes the referral to the child's municipality, sets the triage deadline, and
//! records human decisions of triage officers working for that municipality.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use zvv_platform::{
    audit::CallContext,
    calendar::optional_past_date,
    clock::SharedClock,
    codes::MunicipalityCode,
    error::{ApiError, Violations, checked},
    idempotency::{self, FingerprintKey, Key},
    ids::{new_id, parse_id},
    paging::{Page, page_of, page_request},
};

use super::{SubjectInput, unknown_subject};
use crate::{
    clients::{Intake, Lookup, NewSubjectFacts, SubjectRef},
    domain::{Decision, Level, Referral, add_working_days, parse_instrument, parse_rationale},
    store::{Begun, DecideOutcome, ReferralStore, Submission},
};

/// What a SubmitReferral request carries, unchecked.
#[derive(Debug, Clone)]
pub struct SubmitInput {
    pub request_id: String,
    pub subject: SubjectInput,
    pub source_instrument: String,
    pub instrument_version: String,
    pub level: Option<Level>,
    pub observed_on: String,
    pub municipality_code: String,
    pub birth_date: String,
}

/// A checked submission.
struct Checked {
    subject: SubjectRef,
    instrument: String,
    version: String,
    level: Level,
    observed_on: NaiveDate,
    municipality: MunicipalityCode,
    birth_date: Option<NaiveDate>,
}

pub struct ReferralLogic<S, I> {
    store: S,
    intake: I,
    clock: SharedClock,
    deadline_working_days: u32,
    fingerprints: Arc<FingerprintKey>,
}

impl<S: ReferralStore, I: Intake> ReferralLogic<S, I> {
    pub fn new(
        store: S,
        intake: I,
        clock: SharedClock,
        deadline_working_days: u32,
        fingerprints: Arc<FingerprintKey>,
    ) -> Self {
        Self {
            store,
            intake,
            clock,
            deadline_working_days,
            fingerprints,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today by the service clock (for the overdue flag).
    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    fn parse_submit(&self, input: &SubmitInput) -> Result<Checked, ApiError> {
        let today = self.clock.today();
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, &input.request_id);
        let subject = input.subject.parse(&mut v);
        let instrument = v.check(
            "source_instrument",
            parse_instrument(&input.source_instrument),
        );
        let version = v.check(
            "instrument_version",
            parse_instrument(&input.instrument_version),
        );
        if input.level.is_none() {
            v.add("level", "must be WHITE, YELLOW, ORANGE or RED");
        }
        let observed = if input.observed_on.is_empty() {
            v.add("observed_on", "is required");
            None
        } else {
            optional_past_date("observed_on", &input.observed_on, today, &mut v)
        };
        let municipality = if input.municipality_code.is_empty() {
            v.add(
                "municipality_code",
                "is required: the municipality where the child lives, e.g. GM0363",
            );
            None
        } else {
            v.check(
                "municipality_code",
                MunicipalityCode::parse(&input.municipality_code),
            )
        };
        let birth_date = optional_past_date("birth_date", &input.birth_date, today, &mut v);
        let parsed = match (
            subject,
            instrument,
            version,
            input.level,
            observed,
            municipality,
        ) {
            (
                Some(subject),
                Some(instrument),
                Some(version),
                Some(level),
                Some(observed_on),
                Some(municipality),
            ) => Some(Checked {
                subject,
                instrument,
                version,
                level,
                observed_on,
                municipality,
                birth_date,
            }),
            _ => None,
        };
        checked(v, parsed)
    }

    /// Submits a referral. As for RegisterSignal, the transaction holding the idempotency key
    /// comes first (retries and reused ids are answered before intake is asked), then one intake
    /// call, then the referral in that same transaction.
    pub async fn submit(
        &self,
        ctx: &CallContext,
        input: SubmitInput,
    ) -> Result<Referral, ApiError> {
        let sub = self.parse_submit(&input)?;
        if let SubjectRef::Id(id) = sub.subject {
            ctx.attach([id]);
        }
        let principal = ctx.principal();
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "SubmitReferral",
            &input.request_id,
            &[
                &sub.subject.canonical(),
                &sub.instrument,
                &sub.version,
                sub.level.as_str(),
                &sub.observed_on.to_string(),
                sub.municipality.as_str(),
                &format!("{:?}", sub.birth_date),
            ],
        );
        let now = self.now();
        let submission = match self.store.begin_submission(ctx, &key, now).await? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(submission) => submission,
        };
        // an unknown BSN is registered: a referral must never be lost because the child is new
        let create = NewSubjectFacts {
            municipality_code: Some(sub.municipality.as_str().to_owned()),
            birth_date: sub.birth_date,
        };
        let user = ctx.end_user_or_caller();
        let found = match self
            .intake
            .subject_context(&user, &sub.subject, Some(&create))
            .await?
        {
            Lookup::Found(found) => found,
            Lookup::Unknown { lookup_ref } => {
                ctx.attach(lookup_ref);
                return Err(unknown_subject(
                    "register the child with intake, or refer by BSN",
                ));
            }
        };
        ctx.attach([found.subject_id]);
        let today = now.date_naive();
        let level = sub.level;
        let referral = Referral {
            id: new_id(),
            subject_id: found.subject_id,
            organisation: principal.org,
            source_instrument: sub.instrument,
            instrument_version: sub.version,
            level,
            observed_on: sub.observed_on,
            // intake's municipality wins: it is where the child is registered now
            municipality_code: found
                .municipality_code
                .unwrap_or_else(|| sub.municipality.into_string()),
            birth_date: found.birth_date.or(sub.birth_date),
            decide_by: level
                .needs_decision()
                .then(|| add_working_days(today, self.deadline_working_days)),
            decision: None,
            rationale: None,
            decided_by: None,
            decided_at: None,
            created_at: now,
        };
        submission.submit(ctx, referral, &key).await
    }

    pub async fn list(
        &self,
        ctx: &CallContext,
        decided: Option<bool>,
        overdue_only: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Referral>, ApiError> {
        let (size, after) = page_request(page_size, page_token)?;
        let today = self.clock.today();
        let scope = ctx.principal().jurisdiction();
        let items = self
            .store
            .list_referrals(
                ctx,
                &scope,
                decided,
                overdue_only.then_some(today),
                after,
                size + 1,
                self.now(),
            )
            .await?;
        Ok(page_of(items, size, |r| r.id))
    }

    pub async fn decide(
        &self,
        ctx: &CallContext,
        request_id: &str,
        referral_id: &str,
        decision: Option<Decision>,
        rationale: &str,
    ) -> Result<Referral, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("referral_id", parse_id("referral_id", referral_id));
        if decision.is_none() {
            v.add(
                "decision",
                "must be OPEN_FAMILY_APPROACH, FORWARD_TO_VEILIG_THUIS or NO_ACTION",
            );
        }
        let rationale = v.check("rationale", parse_rationale(rationale));
        let (id, (decision, rationale)) = checked(v, id.zip(decision.zip(rationale)))?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "DecideReferral",
            request_id,
            &[&id.to_string(), decision.as_str(), &rationale],
        );
        let scope = ctx.principal().jurisdiction();
        // an id outside the jurisdiction answers as an unknown one does
        let unknown = format!("referral {id} not found");
        match self
            .store
            .decide(ctx, &scope, id, decision, rationale, &key, self.now())
            .await?
        {
            DecideOutcome::Decided(r) => Ok(*r),
            DecideOutcome::NotFound => Err(ApiError::NotFound(unknown)),
            DecideOutcome::OutsideJurisdiction => Err(ApiError::OutsideJurisdiction(unknown)),
            DecideOutcome::AlreadyDecided { subject_id } => {
                ctx.attach([subject_id]);
                Err(ApiError::FailedPrecondition(
                    "this referral was decided already".into(),
                ))
            }
        }
    }
}
