//! The logic of ReferralService: checks submissions, makes sure the child exists in intake
//! (registering an unknown BSN with the given municipality and birth date, so that no referral
//! is lost), routes the referral to the child's municipality, sets the triage deadline, and
//! records human decisions of triage officers working for that municipality. Knows neither tonic
//! nor sqlx.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    clock::SharedClock,
    codes::MunicipalityCode,
    error::ApiError,
    idempotency::{self, FingerprintKey, Key},
    ids::{new_id, parse_id},
    paging,
};

use crate::{
    identity::{Identity, Lookup, NewSubjectFacts, SubjectRef},
    referrals::{Decision, Level, Referral, add_working_days, parse_instrument, parse_rationale},
    service::{
        Page, SubjectInput, audit_failed, cursor, optional_past_date, page, unknown_subject,
    },
    store::{DecideOutcome, ReferralStore, SignalStore},
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
struct Submission {
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
    identity: I,
    clock: SharedClock,
    deadline_working_days: u32,
    fingerprints: Arc<FingerprintKey>,
}

impl<S: SignalStore + ReferralStore, I: Identity> ReferralLogic<S, I> {
    pub fn new(
        store: S,
        identity: I,
        clock: SharedClock,
        deadline_working_days: u32,
        fingerprints: Arc<FingerprintKey>,
    ) -> Self {
        Self {
            store,
            identity,
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

    async fn failed(&self, ctx: &CallContext, ids: Vec<Uuid>, err: ApiError) -> ApiError {
        audit_failed(&self.store, ctx, ids, err, self.now()).await
    }

    fn parse_submit(&self, input: &SubmitInput) -> Result<Submission, ApiError> {
        let today = self.clock.today();
        let mut v: Vec<(String, String)> = Vec::new();
        if let Err(e) = idempotency::check_request_id("request_id", &input.request_id) {
            v.extend(e.violations().iter().cloned());
        }
        let subject = input.subject.parse(&mut v);
        let instrument = parse_instrument(&input.source_instrument)
            .map_err(|e| v.push(("source_instrument".into(), e.into())))
            .ok();
        let version = parse_instrument(&input.instrument_version)
            .map_err(|e| v.push(("instrument_version".into(), e.into())))
            .ok();
        if input.level.is_none() {
            v.push((
                "level".into(),
                "must be WHITE, YELLOW, ORANGE or RED".into(),
            ));
        }
        let observed = if input.observed_on.is_empty() {
            v.push(("observed_on".into(), "is required".into()));
            None
        } else {
            optional_past_date("observed_on", &input.observed_on, today, &mut v)
        };
        let municipality = if input.municipality_code.is_empty() {
            v.push((
                "municipality_code".into(),
                "is required: the municipality where the child lives, e.g. GM0363".into(),
            ));
            None
        } else {
            MunicipalityCode::parse(&input.municipality_code)
                .map_err(|e| v.push(("municipality_code".into(), e.into())))
                .ok()
        };
        let birth_date = optional_past_date("birth_date", &input.birth_date, today, &mut v);
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v));
        }
        match (
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
            ) => Ok(Submission {
                subject,
                instrument,
                version,
                level,
                observed_on,
                municipality,
                birth_date,
            }),
            _ => Err(ApiError::internal("validation passed with a missing field")),
        }
    }

    pub async fn submit(
        &self,
        ctx: &CallContext,
        input: SubmitInput,
    ) -> Result<Referral, ApiError> {
        let sub = match self.parse_submit(&input) {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let principal = ctx.principal();
        let key = Key {
            scope: format!("{}/SubmitReferral", principal.org),
            request_id: input.request_id,
            fingerprint: self.fingerprints.fingerprint(
                "SubmitReferral",
                &format!(
                    "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
                    sub.subject.canonical(),
                    sub.instrument,
                    sub.version,
                    sub.level.as_str(),
                    sub.observed_on,
                    sub.municipality,
                    sub.birth_date
                ),
            ),
        };
        // retries and reused ids are answered before intake is asked
        match self.store.replay_referral(ctx, &key, self.now()).await {
            Ok(Some(first)) => return Ok(first),
            Ok(None) => {}
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        }
        // an unknown BSN is registered: a referral must never be lost because the child is new
        let create = NewSubjectFacts {
            municipality_code: Some(sub.municipality.as_str().to_owned()),
            birth_date: sub.birth_date,
        };
        let user = ctx.end_user_or_caller();
        let facts = match self
            .identity
            .lookup(&user, &sub.subject, Some(&create))
            .await
        {
            Ok(Lookup::Found(f)) => f,
            Ok(Lookup::Unknown { lookup_ref }) => {
                let (ids, e) = unknown_subject(
                    lookup_ref,
                    "register the child with intake, or refer by BSN",
                );
                return Err(self.failed(ctx, ids, e).await);
            }
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let now = self.now();
        let today = now.date_naive();
        let level = sub.level;
        let referral = Referral {
            id: new_id(),
            subject_id: facts.subject_id,
            organisation: principal.org.clone(),
            source_instrument: sub.instrument,
            instrument_version: sub.version,
            level,
            observed_on: sub.observed_on,
            // intake's municipality wins: it is where the child is registered now
            municipality_code: facts
                .municipality_code
                .unwrap_or_else(|| sub.municipality.into_string()),
            birth_date: facts.birth_date.or(sub.birth_date),
            decide_by: level
                .needs_decision()
                .then(|| add_working_days(today, self.deadline_working_days)),
            decision: None,
            rationale: None,
            decided_by: None,
            decided_at: None,
            created_at: now,
        };
        match self.store.submit(ctx, referral, key).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(ctx, vec![facts.subject_id], e).await),
        }
    }

    pub async fn list(
        &self,
        ctx: &CallContext,
        decided: Option<bool>,
        overdue_only: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Referral>, ApiError> {
        let parsed = paging::page_size(page_size).and_then(|size| Ok((size, cursor(page_token)?)));
        let (size, after) = match parsed {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let today = self.clock.today();
        let scope = ctx.principal().jurisdiction();
        match self
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
            .await
        {
            Ok(items) => Ok(page(items, size, |r| r.id)),
            Err(e) => Err(self.failed(ctx, vec![], e).await),
        }
    }

    pub async fn decide(
        &self,
        ctx: &CallContext,
        referral_id: &str,
        decision: Option<Decision>,
        rationale: &str,
    ) -> Result<Referral, ApiError> {
        let mut v: Vec<(String, String)> = Vec::new();
        let id = parse_id("referral_id", referral_id)
            .map_err(|e| v.extend(e.violations().iter().cloned()))
            .ok();
        if decision.is_none() {
            v.push((
                "decision".into(),
                "must be OPEN_FAMILY_APPROACH, FORWARD_TO_VEILIG_THUIS or NO_ACTION".into(),
            ));
        }
        let rationale = parse_rationale(rationale)
            .map_err(|e| v.push(("rationale".into(), e.into())))
            .ok();
        let (id, decision, rationale) = match (id, decision, rationale, v.is_empty()) {
            (Some(id), Some(d), Some(r), true) => (id, d, r),
            _ => return Err(self.failed(ctx, vec![], ApiError::InvalidArgument(v)).await),
        };
        let scope = ctx.principal().jurisdiction();
        match self
            .store
            .decide(ctx, &scope, id, decision, rationale, self.now())
            .await
        {
            Ok(DecideOutcome::Decided(r)) => Ok(*r),
            Ok(DecideOutcome::NotFound) => {
                Err(ApiError::NotFound(format!("referral {id} not found")))
            }
            Ok(DecideOutcome::AlreadyDecided) => Err(ApiError::FailedPrecondition(
                "this referral was decided already".into(),
            )),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }

    /// Reports referrals past their deadline (see [`ReferralStore::report_overdue`]).
    pub async fn report_overdue(&self) -> Result<u64, ApiError> {
        self.store
            .report_overdue(self.clock.today(), self.now())
            .await
    }
}
