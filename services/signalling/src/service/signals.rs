//! Signals: registration (one intake call, inside the transaction that holds the request's
//! idempotency key), closing, the information duty, reads.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use zvv_platform::{
    audit::CallContext,
    calendar::optional_past_date,
    clock::SharedClock,
    contact::parse_contact,
    error::{ApiError, Violations, checked},
    idempotency::{self, FingerprintKey, Key},
    ids::{new_id, parse_id},
    paging::{Page, page_of, page_request},
};

use super::{SubjectInput, not_found, unknown_subject};
use crate::{
    clients::{Intake, Lookup, SubjectRef},
    domain::{
        CloseReason, Contact, InformationDuty, Signal, SignalStatus, expiry,
        parse_postponement_reason, registrable,
    },
    store::{
        Begun, CloseOutcome, MatchStore, RegisterOutcome, Registered, Registration, SignalStore,
        StatisticsStore,
    },
};

/// The configurable rules of SignalService.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalSettings {
    /// Duration of a signal when the request gives none (1-24 months).
    pub default_duration_months: u32,
    /// Statistics cells with fewer subjects are left out.
    pub statistics_threshold: u32,
}

/// What a RegisterSignal request carries, unchecked.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub request_id: String,
    pub subject: SubjectInput,
    pub contact: Option<Contact>,
    pub duration_months: i32,
}

/// The logic of SignalService.
pub struct SignalLogic<S, I> {
    pub(super) store: S,
    intake: I,
    pub(super) clock: SharedClock,
    pub(super) settings: SignalSettings,
    pub(super) fingerprints: Arc<FingerprintKey>,
}

impl<S, I> SignalLogic<S, I>
where
    S: SignalStore + MatchStore + StatisticsStore,
    I: Intake,
{
    pub fn new(
        store: S,
        intake: I,
        clock: SharedClock,
        settings: SignalSettings,
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

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The statistics threshold (cells below it are left out).
    pub fn statistics_threshold(&self) -> u32 {
        self.settings.statistics_threshold
    }

    fn parse_register(
        &self,
        input: &RegisterInput,
    ) -> Result<(SubjectRef, Contact, u32), ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, &input.request_id);
        let subject = input.subject.parse(&mut v);
        let contact = parse_contact("contact", input.contact.as_ref(), &mut v);
        let months = match input.duration_months {
            0 => Some(self.settings.default_duration_months),
            m @ 1..=24 => Some(m.unsigned_abs()),
            _ => {
                v.add(
                    "duration_months",
                    "must be between 1 and 24 (0 for the default)",
                );
                None
            }
        };
        let parsed = match (subject, contact, months) {
            (Some(s), Some(c), Some(m)) => Some((s, c, m)),
            _ => None,
        };
        checked(v, parsed)
    }

    /// Registers a signal. The transaction that holds the idempotency key is opened first: a
    /// retry is answered, and a reused request_id refused, before intake is asked, so that
    /// neither answer depends on whether intake knows the subject (and a retry gets its first
    /// answer even if the child has turned 23 since). Then intake is asked once, and the
    /// signal is stored in that same transaction.
    pub async fn register(
        &self,
        ctx: &CallContext,
        input: RegisterInput,
    ) -> Result<Registered, ApiError> {
        let (subject, contact, months) = self.parse_register(&input)?;
        if let SubjectRef::Id(id) = subject {
            ctx.attach([id]);
        }
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "RegisterSignal",
            &input.request_id,
            &[
                &subject.canonical(),
                &contact.name,
                &contact.phone,
                &contact.email,
                &months.to_string(),
            ],
        );
        let now = self.now();
        let registration = match self.store.begin_registration(ctx, &key, now).await? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(registration) => registration,
        };
        let user = ctx.end_user_or_caller();
        let found = match self.intake.subject_context(&user, &subject, None).await? {
            Lookup::Found(found) => found,
            Lookup::Unknown { lookup_ref } => {
                // audited with the BSN's lookup reference, so that probing is traceable
                ctx.attach(lookup_ref);
                return Err(unknown_subject("register the child with intake first"));
            }
        };
        ctx.attach([found.subject_id]);
        let today = now.date_naive();
        let birth_date = registrable(found.birth_date, found.date_of_death, today)
            .map_err(|why| ApiError::FailedPrecondition(why.message().to_owned()))?;
        let principal = ctx.principal();
        let signal = Signal {
            id: new_id(),
            subject_id: found.subject_id,
            organisation: principal.org.clone(),
            organisation_type: principal.org_type.as_str().to_owned(),
            contact,
            registered_on: today,
            duration_months: months,
            expires_on: expiry(today, months),
            status: SignalStatus::Active,
            close_reason: None,
            closed_at: None,
            parents_informed_on: None,
            child_informed_on: None,
            postponement_reason: None,
            birth_date,
            municipality_code: found.municipality_code,
            neighbourhood_code: found.neighbourhood_code,
            created_at: now,
        };
        match registration
            .register(ctx, signal, found.families, &key)
            .await?
        {
            RegisterOutcome::Created(registered) => Ok(*registered),
            RegisterOutcome::Duplicate(existing) => {
                ctx.attach([existing]);
                Err(ApiError::AlreadyExists {
                    message: "your organisation already has an active signal on this subject"
                        .into(),
                    reason: "SIGNAL_ALREADY_ACTIVE",
                    metadata: HashMap::from([("signal_id".to_owned(), existing.to_string())]),
                })
            }
        }
    }

    pub async fn close(
        &self,
        ctx: &CallContext,
        request_id: &str,
        signal_id: &str,
        reason: Option<CloseReason>,
    ) -> Result<Signal, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("signal_id", parse_id("signal_id", signal_id));
        if reason.is_none() {
            v.add("reason", "must be UNJUSTIFIED or RISK_GONE");
        }
        let (id, reason) = checked(v, id.zip(reason))?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "CloseSignal",
            request_id,
            &[&id.to_string(), reason.as_str()],
        );
        let organisation = ctx.principal().org;
        match self
            .store
            .close(ctx, &organisation, id, reason, &key, self.now())
            .await?
        {
            CloseOutcome::Closed(s) => Ok(*s),
            CloseOutcome::NotFound => Err(not_found("signal", id)),
            CloseOutcome::NotActive(status) => Err(ApiError::FailedPrecondition(format!(
                "the signal is {} already",
                status.as_str().to_lowercase()
            ))),
        }
    }

    pub async fn get(&self, ctx: &CallContext, signal_id: &str) -> Result<Signal, ApiError> {
        let id = parse_id("signal_id", signal_id)?;
        ctx.attach([id]);
        self.store
            .get(ctx, &ctx.principal().org, id, self.now())
            .await?
            .ok_or_else(|| not_found("signal", id))
    }

    pub async fn list(
        &self,
        ctx: &CallContext,
        status: Option<SignalStatus>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Signal>, ApiError> {
        let (size, after) = page_request(page_size, page_token)?;
        let items = self
            .store
            .list(
                ctx,
                &ctx.principal().org,
                status,
                after,
                size + 1,
                self.now(),
            )
            .await?;
        Ok(page_of(items, size, |s| s.id))
    }

    pub async fn record_information_duty(
        &self,
        ctx: &CallContext,
        request_id: &str,
        signal_id: &str,
        parents_informed_on: &str,
        child_informed_on: &str,
        postponement_reason: &str,
    ) -> Result<Signal, ApiError> {
        let today = self.clock.today();
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("signal_id", parse_id("signal_id", signal_id));
        let parents = optional_past_date("parents_informed_on", parents_informed_on, today, &mut v);
        let child = optional_past_date("child_informed_on", child_informed_on, today, &mut v);
        let reason = v
            .check(
                "postponement_reason",
                parse_postponement_reason(postponement_reason),
            )
            .flatten();
        let id = checked(v, id)?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "RecordInformationDuty",
            request_id,
            &[
                &id.to_string(),
                parents_informed_on,
                child_informed_on,
                postponement_reason,
            ],
        );
        let duty = InformationDuty {
            parents_informed_on: parents,
            child_informed_on: child,
            postponement_reason: reason,
        };
        self.store
            .record_information_duty(ctx, &ctx.principal().org, id, duty, &key, self.now())
            .await?
            .ok_or_else(|| not_found("signal", id))
    }
}
