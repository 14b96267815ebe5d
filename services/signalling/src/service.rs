//! Signalling's logic: checks requests, asks intake about the child, applies the age and
//! duration rules and turns store outcomes into results. Knows neither tonic nor sqlx.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    bsn::Bsn,
    clock::SharedClock,
    error::ApiError,
    idempotency::{self, FingerprintKey, Key},
    ids::{new_id, parse_id},
    paging,
};

use crate::{
    domain::{
        CloseReason, Contact, Coordinator, InformationDuty, Match, Signal, SignalStatus, age_on,
        expiry, parse_contact_name, parse_email, parse_phone, parse_postponement_reason,
    },
    identity::{Identity, Lookup, SubjectRef},
    store::{CloseOutcome, MatchChange, MatchOutcome, RegisterOutcome, SignalStore},
};

/// Age from which nothing about a subject may be kept.
pub const AGE_LIMIT: i32 = 23;

/// How the request names the child, unchecked.
#[derive(Clone)]
pub enum SubjectInput {
    Bsn(String),
    SubjectId(String),
    Missing,
}

impl std::fmt::Debug for SubjectInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bsn(_) => f.write_str("Bsn(<redacted>)"),
            Self::SubjectId(id) => write!(f, "SubjectId({id})"),
            Self::Missing => f.write_str("Missing"),
        }
    }
}

impl SubjectRef {
    /// The subject as the request named it, for request fingerprints (which are keyed: a BSN
    /// never goes into an unkeyed hash).
    pub(crate) fn canonical(&self) -> String {
        match self {
            Self::Bsn(bsn) => format!("bsn:{}", bsn.expose()),
            Self::Id(id) => format!("id:{id}"),
        }
    }
}

impl SubjectInput {
    /// The subject, or a violation naming `bsn`, `subject_id` or `subject`.
    pub(crate) fn parse(&self, v: &mut Vec<(String, String)>) -> Option<SubjectRef> {
        match self {
            Self::Bsn(b) => Bsn::parse(b)
                .map(SubjectRef::Bsn)
                .map_err(|e| v.push(("bsn".into(), e.to_string())))
                .ok(),
            Self::SubjectId(id) => parse_id("subject_id", id)
                .map(SubjectRef::Id)
                .map_err(|e| v.extend(e.violations().iter().cloned()))
                .ok(),
            Self::Missing => {
                v.push(("subject".into(), "a bsn or a subject_id is required".into()));
                None
            }
        }
    }
}

/// Audits a failure the store did not record, and hands the error back.
pub(crate) async fn audit_failed<S: SignalStore>(
    store: &S,
    ctx: &CallContext,
    ids: Vec<Uuid>,
    err: ApiError,
    now: DateTime<Utc>,
) -> ApiError {
    if let Err(e) = store.audit_failure(ctx, ids, err.code_name(), now).await {
        tracing::error!(error = %e, "cannot audit a failed call");
    }
    err
}

/// What a RegisterSignal request carries, unchecked.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub request_id: String,
    pub subject: SubjectInput,
    pub contact: Option<Contact>,
    pub duration_months: i32,
}

pub struct SignalLogic<S, I> {
    store: S,
    identity: I,
    clock: SharedClock,
    default_duration_months: u32,
    fingerprints: Arc<FingerprintKey>,
}

/// Why a request about a subject intake does not know cannot proceed; audited with the BSN's
/// lookup reference when there is one, so that probing is traceable.
pub(crate) fn unknown_subject(lookup_ref: Option<Uuid>, what: &str) -> (Vec<Uuid>, ApiError) {
    (
        lookup_ref.into_iter().collect(),
        ApiError::FailedPrecondition(format!("intake does not know this subject: {what}")),
    )
}

/// A page of results and the cursor of the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Uuid>,
}

pub(crate) fn cursor(token: &str) -> Result<Option<Uuid>, ApiError> {
    match paging::decode_token(token)? {
        None => Ok(None),
        Some(c) => Uuid::try_parse(&c)
            .map(Some)
            .map_err(|_| ApiError::invalid("page_token", "is not a token returned by this RPC")),
    }
}

pub(crate) fn page<T>(mut items: Vec<T>, size: u32, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let next = if items.len() > size as usize {
        items.truncate(size as usize);
        items.last().map(&id)
    } else {
        None
    };
    Page { items, next }
}

impl<S: SignalStore, I: Identity> SignalLogic<S, I> {
    pub fn new(
        store: S,
        identity: I,
        clock: SharedClock,
        default_duration_months: u32,
        fingerprints: Arc<FingerprintKey>,
    ) -> Self {
        Self {
            store,
            identity,
            clock,
            default_duration_months,
            fingerprints,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn failed(&self, ctx: &CallContext, ids: Vec<Uuid>, err: ApiError) -> ApiError {
        audit_failed(&self.store, ctx, ids, err, self.now()).await
    }

    fn parse_register(
        &self,
        input: &RegisterInput,
    ) -> Result<(SubjectRef, Contact, u32), ApiError> {
        let mut v: Vec<(String, String)> = Vec::new();
        if let Err(e) = idempotency::check_request_id("request_id", &input.request_id) {
            v.extend(e.violations().iter().cloned());
        }
        let subject = input.subject.parse(&mut v);
        let contact = match &input.contact {
            None => {
                v.push(("contact".into(), "is required".into()));
                None
            }
            Some(c) => {
                let name = parse_contact_name(&c.name)
                    .map_err(|e| v.push(("contact.name".into(), e.into())));
                let phone =
                    parse_phone(&c.phone).map_err(|e| v.push(("contact.phone".into(), e.into())));
                let email =
                    parse_email(&c.email).map_err(|e| v.push(("contact.email".into(), e.into())));
                match (name, phone, email) {
                    (Ok(name), Ok(phone), Ok(email)) => Some(Contact { name, phone, email }),
                    _ => None,
                }
            }
        };
        let months = match input.duration_months {
            0 => Some(self.default_duration_months),
            m @ 1..=24 => Some(m as u32),
            _ => {
                v.push((
                    "duration_months".into(),
                    "must be between 1 and 24 (0 for the default)".into(),
                ));
                None
            }
        };
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v));
        }
        match (subject, contact, months) {
            (Some(s), Some(c), Some(m)) => Ok((s, c, m)),
            _ => Err(ApiError::internal("validation passed with a missing field")),
        }
    }

    pub async fn register(
        &self,
        ctx: &CallContext,
        input: RegisterInput,
    ) -> Result<(Signal, Vec<Match>), ApiError> {
        let (subject, contact, months) = match self.parse_register(&input) {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let principal = ctx.principal();
        let key = Key {
            scope: format!("{}/RegisterSignal", principal.org),
            request_id: input.request_id,
            fingerprint: self.fingerprints.fingerprint(
                "RegisterSignal",
                &format!(
                    "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
                    subject.canonical(),
                    contact.name,
                    contact.phone,
                    contact.email,
                    months
                ),
            ),
        };
        // A retry is answered, and a reused request_id refused, before intake is asked: neither
        // answer can depend on whether intake knows the subject. A retry gets its first answer
        // even if the child has since turned 23.
        match self.store.replay(ctx, &key, self.now()).await {
            Ok(Some(first)) => return Ok(first),
            Ok(None) => {}
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        }
        let user = ctx.end_user_or_caller();
        let facts = match self.identity.lookup(&user, &subject, None).await {
            Ok(Lookup::Found(f)) => f,
            Ok(Lookup::Unknown { lookup_ref }) => {
                let (ids, e) = unknown_subject(lookup_ref, "register the child with intake first");
                return Err(self.failed(ctx, ids, e).await);
            }
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let now = self.now();
        let today = now.date_naive();
        let precondition = |why: &str| ApiError::FailedPrecondition(why.to_owned());
        let birth_date = match facts.birth_date {
            Some(b) => b,
            None => {
                let e = precondition(
                    "intake does not know this subject's birth date: complete the registration with intake first",
                );
                return Err(self.failed(ctx, vec![facts.subject_id], e).await);
            }
        };
        if facts.date_of_death.is_some() {
            let e = precondition("the subject has died: no signal can be registered");
            return Err(self.failed(ctx, vec![facts.subject_id], e).await);
        }
        if age_on(birth_date, today) >= AGE_LIMIT {
            let e = precondition(
                "the subject is 23 or older: the signalling index is for people under 23",
            );
            return Err(self.failed(ctx, vec![facts.subject_id], e).await);
        }
        let signal = Signal {
            id: new_id(),
            subject_id: facts.subject_id,
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
            municipality_code: facts.municipality_code,
            neighbourhood_code: facts.neighbourhood_code,
            created_at: now,
        };
        let families = match self.identity.families(&user, facts.subject_id).await {
            Ok(f) => f,
            Err(e) => return Err(self.failed(ctx, vec![facts.subject_id], e).await),
        };
        match self.store.register(ctx, signal, families, key).await {
            Ok(RegisterOutcome::Created(s, m) | RegisterOutcome::Replayed(s, m)) => Ok((s, m)),
            Ok(RegisterOutcome::Duplicate(existing)) => Err(ApiError::AlreadyExists {
                message: "your organisation already has an active signal on this subject".into(),
                reason: "SIGNAL_ALREADY_ACTIVE",
                metadata: HashMap::from([("signal_id".to_owned(), existing.to_string())]),
            }),
            Err(e) => Err(self.failed(ctx, vec![facts.subject_id], e).await),
        }
    }

    pub async fn close(
        &self,
        ctx: &CallContext,
        signal_id: &str,
        reason: Option<CloseReason>,
    ) -> Result<Signal, ApiError> {
        let parsed = parse_id("signal_id", signal_id).and_then(|id| {
            reason
                .map(|r| (id, r))
                .ok_or_else(|| ApiError::invalid("reason", "must be UNJUSTIFIED or RISK_GONE"))
        });
        let (id, reason) = match parsed {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        match self
            .store
            .close(ctx, &ctx.principal().org, id, reason, self.now())
            .await
        {
            Ok(CloseOutcome::Closed(s)) => Ok(*s),
            Ok(CloseOutcome::NotFound) => Err(not_found("signal", id)),
            Ok(CloseOutcome::NotActive(status)) => Err(ApiError::FailedPrecondition(format!(
                "the signal is {} already",
                status.as_str().to_lowercase()
            ))),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }

    pub async fn get(&self, ctx: &CallContext, signal_id: &str) -> Result<Signal, ApiError> {
        let id = match parse_id("signal_id", signal_id) {
            Ok(id) => id,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        match self
            .store
            .get(ctx, &ctx.principal().org, id, self.now())
            .await
        {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(not_found("signal", id)),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }

    pub async fn list(
        &self,
        ctx: &CallContext,
        status: Option<SignalStatus>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Signal>, ApiError> {
        let parsed = paging::page_size(page_size).and_then(|size| Ok((size, cursor(page_token)?)));
        let (size, after) = match parsed {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        match self
            .store
            .list(
                ctx,
                &ctx.principal().org,
                status,
                after,
                size + 1,
                self.now(),
            )
            .await
        {
            Ok(items) => Ok(page(items, size, |s| s.id)),
            Err(e) => Err(self.failed(ctx, vec![], e).await),
        }
    }

    pub async fn list_matches(
        &self,
        ctx: &CallContext,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Match>, ApiError> {
        let parsed = paging::page_size(page_size).and_then(|size| Ok((size, cursor(page_token)?)));
        let (size, after) = match parsed {
            Ok(p) => p,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        match self
            .store
            .list_matches(ctx, &ctx.principal().org, after, size + 1, self.now())
            .await
        {
            Ok(items) => Ok(page(items, size, |m| m.id)),
            Err(e) => Err(self.failed(ctx, vec![], e).await),
        }
    }

    pub async fn get_match(&self, ctx: &CallContext, match_id: &str) -> Result<Match, ApiError> {
        let id = match parse_id("match_id", match_id) {
            Ok(id) => id,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        match self
            .store
            .get_match(ctx, &ctx.principal().org, id, self.now())
            .await
        {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(not_found("match", id)),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }
}

/// Checks a contact, naming fields under `prefix` (e.g. `contact.name`).
fn parse_contact(
    prefix: &str,
    contact: Option<&Contact>,
    v: &mut Vec<(String, String)>,
) -> Option<Contact> {
    let Some(c) = contact else {
        v.push((prefix.to_owned(), "is required".into()));
        return None;
    };
    let name =
        parse_contact_name(&c.name).map_err(|e| v.push((format!("{prefix}.name"), e.into())));
    let phone = parse_phone(&c.phone).map_err(|e| v.push((format!("{prefix}.phone"), e.into())));
    let email = parse_email(&c.email).map_err(|e| v.push((format!("{prefix}.email"), e.into())));
    match (name, phone, email) {
        (Ok(name), Ok(phone), Ok(email)) => Some(Contact { name, phone, email }),
        _ => None,
    }
}

/// An optional date: empty is none; otherwise a real date not after `today` (else a violation
/// naming `field`).
pub(crate) fn optional_past_date(
    field: &str,
    value: &str,
    today: chrono::NaiveDate,
    v: &mut Vec<(String, String)>,
) -> Option<chrono::NaiveDate> {
    if value.is_empty() {
        return None;
    }
    match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) if value.len() == 10 && d <= today => Some(d),
        Ok(d) if d > today => {
            v.push((field.to_owned(), "must not be in the future".into()));
            None
        }
        _ => {
            v.push((field.to_owned(), "must be a real date as YYYY-MM-DD".into()));
            None
        }
    }
}

impl<S: SignalStore, I: Identity> SignalLogic<S, I> {
    /// Target-group statistics: distinct subjects per neighbourhood × age band (on the last day
    /// of the period) × organisation type, for a municipality in the analyst's jurisdiction.
    /// The period is whole calendar months that have begun, so that two periods a day apart
    /// cannot be subtracted to expose one child; cells below the threshold are left out, exactly
    /// as empty cells are.
    pub async fn statistics(
        &self,
        ctx: &CallContext,
        municipality_code: &str,
        from_month: &str,
        to_month: &str,
        threshold: u32,
    ) -> Result<Vec<crate::domain::StatisticsCell>, ApiError> {
        use crate::domain::{AgeBand, StatisticsCell, parse_period};
        let today = self.clock.today();
        let mut v = Vec::new();
        let municipality = zvv_platform::codes::MunicipalityCode::parse(municipality_code)
            .map_err(|e| v.push(("municipality_code".to_owned(), e.to_owned())))
            .ok();
        let period = parse_period(from_month, to_month, today)
            .map_err(|(field, why)| v.push((field.to_owned(), why)))
            .ok();
        let (municipality, (from, to)) = match (municipality, period) {
            (Some(m), Some(p)) if v.is_empty() => (m, p),
            _ => return Err(self.failed(ctx, vec![], ApiError::InvalidArgument(v)).await),
        };
        if !ctx.principal().jurisdiction().covers(municipality.as_str()) {
            let e = ApiError::PermissionDenied(format!(
                "municipality {municipality} is not in your organisation's jurisdiction (the \
                 municipalities claim of your token)"
            ));
            return Err(self.failed(ctx, vec![], e).await);
        }
        let rows = match self
            .store
            .statistics(ctx, municipality.as_str(), from, to, self.now())
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        let mut counts: std::collections::BTreeMap<
            (String, AgeBand, String),
            std::collections::BTreeSet<Uuid>,
        > = std::collections::BTreeMap::new();
        for (wk, subject, birth, org_type) in rows {
            if let Some(band) = AgeBand::of(age_on(birth, to)) {
                counts
                    .entry((wk, band, org_type))
                    .or_default()
                    .insert(subject);
            }
        }
        Ok(counts
            .into_iter()
            .filter_map(
                |((neighbourhood_code, age_band, organisation_type), subjects)| {
                    let n = subjects.len() as u32;
                    (n >= threshold).then_some(StatisticsCell {
                        neighbourhood_code,
                        age_band,
                        organisation_type,
                        subjects: n,
                    })
                },
            )
            .collect())
    }

    pub async fn record_information_duty(
        &self,
        ctx: &CallContext,
        signal_id: &str,
        parents_informed_on: &str,
        child_informed_on: &str,
        postponement_reason: &str,
    ) -> Result<Signal, ApiError> {
        let today = self.clock.today();
        let mut v = Vec::new();
        let id = parse_id("signal_id", signal_id)
            .map_err(|e| v.extend(e.violations().iter().cloned()))
            .ok();
        let parents = optional_past_date("parents_informed_on", parents_informed_on, today, &mut v);
        let child = optional_past_date("child_informed_on", child_informed_on, today, &mut v);
        let reason = parse_postponement_reason(postponement_reason)
            .map_err(|e| v.push(("postponement_reason".into(), e.into())))
            .ok()
            .flatten();
        let id = match (id, v.is_empty()) {
            (Some(id), true) => id,
            _ => return Err(self.failed(ctx, vec![], ApiError::InvalidArgument(v)).await),
        };
        let duty = InformationDuty {
            parents_informed_on: parents,
            child_informed_on: child,
            postponement_reason: reason,
        };
        match self
            .store
            .record_information_duty(ctx, &ctx.principal().org, id, duty, self.now())
            .await
        {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(not_found("signal", id)),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }

    pub async fn assign_coordinator(
        &self,
        ctx: &CallContext,
        match_id: &str,
        organisation: &str,
        contact: Option<&Contact>,
    ) -> Result<Match, ApiError> {
        let mut v = Vec::new();
        let id = parse_id("match_id", match_id)
            .map_err(|e| v.extend(e.violations().iter().cloned()))
            .ok();
        if organisation.trim().is_empty() {
            v.push(("organisation".into(), "is required".into()));
        }
        let contact = parse_contact("contact", contact, &mut v);
        let (id, contact) = match (id, contact, v.is_empty()) {
            (Some(id), Some(c), true) => (id, c),
            _ => return Err(self.failed(ctx, vec![], ApiError::InvalidArgument(v)).await),
        };
        let change = MatchChange::AssignCoordinator(Coordinator {
            organisation: organisation.to_owned(),
            contact,
            assigned_at: self.now(),
        });
        self.change_match(ctx, id, change).await
    }

    pub async fn mark_coordinated(
        &self,
        ctx: &CallContext,
        match_id: &str,
    ) -> Result<Match, ApiError> {
        let id = match parse_id("match_id", match_id) {
            Ok(id) => id,
            Err(e) => return Err(self.failed(ctx, vec![], e).await),
        };
        self.change_match(ctx, id, MatchChange::MarkCoordinated)
            .await
    }

    async fn change_match(
        &self,
        ctx: &CallContext,
        id: Uuid,
        change: MatchChange,
    ) -> Result<Match, ApiError> {
        match self
            .store
            .change_match(ctx, &ctx.principal().org, id, change, self.now())
            .await
        {
            Ok(MatchOutcome::Changed(m)) => Ok(*m),
            Ok(MatchOutcome::NotFound) => Err(ApiError::NotFound(format!(
                "no open match {id} that your organisation is in"
            ))),
            Ok(MatchOutcome::CoordinatorNotParticipant) => Err(ApiError::FailedPrecondition(
                "the coordinator must be one of the organisations in the match".into(),
            )),
            Ok(MatchOutcome::NoCoordinator) => Err(ApiError::FailedPrecondition(
                "assign a coordinator before marking the match coordinated".into(),
            )),
            Err(e) => Err(self.failed(ctx, vec![id], e).await),
        }
    }
}

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::NotFound(format!("{what} {id} not found"))
}

/// Holds the logic behind an `Arc` so that both gRPC services can share it.
pub type SharedLogic<S, I> = Arc<SignalLogic<S, I>>;
