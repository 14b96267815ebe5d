//! The registry's logic: checks requests, seals BSNs, and turns store outcomes into results.
//! Knows neither tonic nor sqlx.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    auth::Role,
    bsn::{Bsn, BsnVault},
    clock::SharedClock,
    error::ApiError,
    idempotency::{self, Key},
    ids::{new_id, parse_id},
    paging,
};

use crate::{
    domain::{
        Family, MunicipalityCode, NeighbourhoodCode, NewSubject, Relation, RelationKind,
        RelationSource, Subject, SubjectChange, Unlink, UnlinkReason, Violations, parse_birth_date,
        parse_date_of_death, parse_name,
    },
    store::{
        ContextKey, LinkOutcome, ParentFamily, RegisterOutcome, ResolveOutcome, SubjectContext,
        SubjectRow, SubjectStore, UnlinkOutcome, Unseen, Visible,
    },
};

/// What a RegisterSubject request carries, unchecked. Its `Debug` hides the personal data.
#[derive(Clone, Default)]
pub struct RegisterInput {
    pub request_id: String,
    pub bsn: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: String,
    pub municipality_code: String,
    pub neighbourhood_code: String,
}

impl std::fmt::Debug for RegisterInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterInput")
            .field("request_id", &self.request_id)
            .field("municipality_code", &self.municipality_code)
            .field("neighbourhood_code", &self.neighbourhood_code)
            .finish_non_exhaustive()
    }
}

/// The answer to ResolveSubject.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub subject: Subject,
    pub created: bool,
    /// The BSN's lookup reference ([`BsnVault::lookup_ref`]).
    pub lookup_ref: Uuid,
}

/// What ResolveSubject records when it creates a subject, unchecked; both optional.
#[derive(Debug, Clone, Default)]
pub struct CreateFacts {
    pub municipality_code: String,
    pub birth_date: String,
}

/// One page of relations.
#[derive(Debug, Clone)]
pub struct RelationPage {
    pub relations: Vec<Relation>,
    pub next: Option<(Uuid, Uuid)>,
}

pub struct SubjectLogic<S> {
    store: S,
    vault: Arc<BsnVault>,
    clock: SharedClock,
}

fn bsn(field: &str, value: &str) -> Result<Bsn, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Bsn::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Scope of idempotency keys: per organisation and RPC.
fn scope(ctx: &CallContext, rpc: &str) -> String {
    format!("{}/{rpc}", ctx.principal().org)
}

impl<S: SubjectStore> SubjectLogic<S> {
    pub fn new(store: S, vault: Arc<BsnVault>, clock: SharedClock) -> Self {
        Self {
            store,
            vault,
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn to_subject(&self, row: SubjectRow) -> Result<Subject, ApiError> {
        // the store checked this before committing; a failure here is logged, never shown
        let bsn = self
            .vault
            .open(&row.bsn, row.id)
            .map_err(ApiError::internal)?;
        Ok(Subject {
            id: row.id,
            bsn_masked: bsn.masked(),
            given_name: row.given_name,
            family_name: row.family_name,
            birth_date: row.birth_date,
            municipality_code: row.municipality_code,
            neighbourhood_code: row.neighbourhood_code,
            date_of_death: row.date_of_death,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn parse_register(&self, input: &RegisterInput) -> Result<NewSubject, ApiError> {
        let today = self.clock.today();
        let mut v = Violations::default();
        if let Err(ApiError::InvalidArgument(errs)) =
            idempotency::check_request_id("request_id", &input.request_id)
        {
            for (f, why) in errs {
                v.add(&f, why);
            }
        }
        let bsn = match bsn("bsn", &input.bsn) {
            Ok(b) => Some(b),
            Err(e) => {
                for (f, why) in e.violations() {
                    v.add(f, why.clone());
                }
                None
            }
        };
        let given = v.check("given_name", parse_name(&input.given_name));
        let family = v.check("family_name", parse_name(&input.family_name));
        let birth = v.check("birth_date", parse_birth_date(&input.birth_date, today));
        let muni = v.check(
            "municipality_code",
            MunicipalityCode::parse(&input.municipality_code),
        );
        let wk = v.check(
            "neighbourhood_code",
            NeighbourhoodCode::parse(&input.neighbourhood_code),
        );
        if let (Some(m), Some(w)) = (&muni, &wk)
            && !w.lies_in(m)
        {
            v.add(
                "neighbourhood_code",
                format!("does not lie in municipality {m}"),
            );
        }
        v.into_result()?;
        match (bsn, given, family, birth, muni, wk) {
            (
                Some(bsn),
                Some(given_name),
                Some(family_name),
                Some(birth_date),
                Some(municipality),
                Some(neighbourhood),
            ) => Ok(NewSubject {
                bsn,
                given_name,
                family_name,
                birth_date,
                municipality,
                neighbourhood,
            }),
            _ => Err(ApiError::internal("validation passed with a missing field")),
        }
    }

    pub async fn register(
        &self,
        ctx: &CallContext,
        input: RegisterInput,
    ) -> Result<Subject, ApiError> {
        let new = self.parse_register(&input)?;
        let jurisdiction = ctx.principal().jurisdiction();
        if !jurisdiction.covers(new.municipality.as_str()) {
            let e = ApiError::PermissionDenied(format!(
                "municipality_code {} is not in your organisation's jurisdiction (the municipalities \
                 claim of your token): register people only in a municipality you work for",
                new.municipality
            ));
            return Err(e);
        }
        let now = self.now();
        let fingerprint = self.vault.fingerprint(
            "RegisterSubject",
            [
                new.bsn.expose().as_str(),
                &new.given_name,
                &new.family_name,
                &new.birth_date.to_string(),
                new.municipality.as_str(),
                new.neighbourhood.as_str(),
            ]
            .join("\u{1f}")
            .as_bytes(),
        );
        let key = Key {
            scope: scope(ctx, "RegisterSubject"),
            request_id: input.request_id,
            fingerprint,
        };
        let id = new_id();
        let row = SubjectRow {
            id,
            bsn: self.vault.seal(&new.bsn, id),
            lookup: self.vault.lookup_key(&new.bsn),
            given_name: Some(new.given_name),
            family_name: Some(new.family_name),
            birth_date: Some(new.birth_date),
            municipality_code: Some(new.municipality.as_str().to_owned()),
            neighbourhood_code: Some(new.neighbourhood.as_str().to_owned()),
            date_of_death: None,
            created_at: now,
            updated_at: now,
        };
        let lookup = row.lookup.clone();
        match self.store.register(ctx, row, lookup, key).await? {
            RegisterOutcome::Created(row) | RegisterOutcome::Replayed(row) => self.to_subject(row),
            RegisterOutcome::BsnTaken(existing, municipality)
                if jurisdiction.covers_opt(municipality.as_deref()) =>
            {
                ctx.attach([existing]);
                Err(ApiError::AlreadyExists {
                    message: format!("a subject with this BSN is already registered as {existing}"),
                    reason: "SUBJECT_ALREADY_REGISTERED",
                    metadata: HashMap::from([("subject_id".to_owned(), existing.to_string())]),
                })
            }
            // neither the id nor the municipality: the caller may not see that subject
            RegisterOutcome::BsnTaken(existing, _) => {
                ctx.attach([existing]);
                Err(ApiError::AlreadyExists {
                    message:
                        "a subject with this BSN is already registered with another municipality"
                            .into(),
                    reason: "SUBJECT_REGISTERED_ELSEWHERE",
                    metadata: HashMap::new(),
                })
            }
        }
    }

    /// A subject known only by its BSN (and what a creating service knows).
    fn bare_subject(
        &self,
        bsn: &Bsn,
        municipality: Option<MunicipalityCode>,
        birth_date: Option<chrono::NaiveDate>,
        now: DateTime<Utc>,
    ) -> SubjectRow {
        let id = new_id();
        SubjectRow {
            id,
            bsn: self.vault.seal(bsn, id),
            lookup: self.vault.lookup_key(bsn),
            given_name: None,
            family_name: None,
            birth_date,
            municipality_code: municipality.map(MunicipalityCode::into_string),
            neighbourhood_code: None,
            date_of_death: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn parse_resolve(
        &self,
        bsn_text: &str,
        facts: &CreateFacts,
    ) -> Result<(Bsn, Option<MunicipalityCode>, Option<chrono::NaiveDate>), ApiError> {
        let mut v = Violations::default();
        let bsn = match bsn("bsn", bsn_text) {
            Ok(b) => Some(b),
            Err(e) => {
                for (f, why) in e.violations() {
                    v.add(f, why.clone());
                }
                None
            }
        };
        let municipality = if facts.municipality_code.is_empty() {
            None
        } else {
            v.check(
                "municipality_code",
                MunicipalityCode::parse(&facts.municipality_code),
            )
        };
        let birth = if facts.birth_date.is_empty() {
            None
        } else {
            v.check(
                "birth_date",
                parse_birth_date(&facts.birth_date, self.clock.today()),
            )
        };
        v.into_result()?;
        let bsn = bsn.ok_or_else(|| ApiError::internal("validation passed without a bsn"))?;
        Ok((bsn, municipality, birth))
    }

    pub async fn resolve(
        &self,
        ctx: &CallContext,
        bsn_text: &str,
        create_if_missing: bool,
        facts: &CreateFacts,
    ) -> Result<Resolved, ApiError> {
        let (bsn, municipality, birth_date) = self.parse_resolve(bsn_text, facts)?;
        let now = self.now();
        let create =
            create_if_missing.then(|| self.bare_subject(&bsn, municipality, birth_date, now));
        let lookup_ref = self.vault.lookup_ref(&bsn);
        ctx.attach([lookup_ref]);
        match self
            .store
            .resolve(ctx, self.vault.lookup_key(&bsn), lookup_ref, create, now)
            .await?
        {
            ResolveOutcome::Found(row) => Ok(Resolved {
                subject: self.to_subject(row)?,
                created: false,
                lookup_ref,
            }),
            ResolveOutcome::Created(row) => Ok(Resolved {
                subject: self.to_subject(row)?,
                created: true,
                lookup_ref,
            }),
            ResolveOutcome::NotFound => Err(unknown_bsn(lookup_ref)),
        }
    }

    pub async fn get(&self, ctx: &CallContext, subject_id: &str) -> Result<Subject, ApiError> {
        let id = parse_id("subject_id", subject_id)?;
        let jurisdiction = ctx.principal().jurisdiction();
        ctx.attach([id]);
        let row = visible(
            id,
            self.store.get(ctx, &jurisdiction, id, self.now()).await?,
        )?;
        self.to_subject(row)
    }

    /// `changes` are (mask path, new value) pairs as the caller sent them.
    pub async fn update(
        &self,
        ctx: &CallContext,
        subject_id: &str,
        paths: &[String],
        values: &UpdateValues,
        request_id: &str,
    ) -> Result<Subject, ApiError> {
        let parsed = self.parse_update(subject_id, paths, values, request_id);
        let (id, changes, fields) = parsed?;
        ctx.attach([id]);
        // depends on the caller and the mask only, so it tells nothing about the subject
        let principal = ctx.principal();
        if fields.contains(&"date_of_death")
            && !(principal.is_suite_service() || principal.has_role(Role::Coordinator))
        {
            let e = ApiError::PermissionDenied(
                "only a COORDINATOR of the subject's municipality or a suite service may record or \
                 clear a date of death"
                    .into(),
            );
            return Err(e);
        }
        let jurisdiction = principal.jurisdiction();
        let key = (!request_id.is_empty()).then(|| Key {
            scope: scope(ctx, "UpdateSubject"),
            request_id: request_id.to_owned(),
            fingerprint: self
                .vault
                .fingerprint("UpdateSubject", format!("{id}\u{1f}{changes:?}").as_bytes()),
        });
        let apply = Box::new(move |row: &mut SubjectRow| apply_changes(row, changes));
        let found = self
            .store
            .update(ctx, &jurisdiction, id, key, fields, apply, self.now())
            .await?;
        self.to_subject(visible(id, found)?)
    }

    fn parse_update(
        &self,
        subject_id: &str,
        paths: &[String],
        values: &UpdateValues,
        request_id: &str,
    ) -> Result<(Uuid, Vec<SubjectChange>, Vec<&'static str>), ApiError> {
        let id = parse_id("subject_id", subject_id)?;
        if !request_id.is_empty() {
            idempotency::check_request_id("request_id", request_id)?;
        }
        if paths.is_empty() {
            return Err(ApiError::invalid(
                "update_mask",
                "must name at least one field",
            ));
        }
        let today = self.clock.today();
        let mut v = Violations::default();
        let mut changes = Vec::new();
        let mut fields = Vec::new();
        for path in paths {
            let (field, change): (&'static str, Option<SubjectChange>) = match path.as_str() {
                "given_name" => (
                    "given_name",
                    v.check("subject.given_name", parse_name(&values.given_name))
                        .map(SubjectChange::GivenName),
                ),
                "family_name" => (
                    "family_name",
                    v.check("subject.family_name", parse_name(&values.family_name))
                        .map(SubjectChange::FamilyName),
                ),
                "municipality_code" => (
                    "municipality_code",
                    v.check(
                        "subject.municipality_code",
                        MunicipalityCode::parse(&values.municipality_code),
                    )
                    .map(SubjectChange::Municipality),
                ),
                "neighbourhood_code" => (
                    "neighbourhood_code",
                    v.check(
                        "subject.neighbourhood_code",
                        NeighbourhoodCode::parse(&values.neighbourhood_code),
                    )
                    .map(SubjectChange::Neighbourhood),
                ),
                "date_of_death" => (
                    "date_of_death",
                    v.check(
                        "subject.date_of_death",
                        parse_date_of_death(&values.date_of_death, today),
                    )
                    .map(SubjectChange::DateOfDeath),
                ),
                "birth_date" => (
                    "birth_date",
                    v.check(
                        "subject.birth_date",
                        parse_birth_date(&values.birth_date, today),
                    )
                    .map(SubjectChange::BirthDate),
                ),
                other => {
                    v.add(
                        "update_mask",
                        format!(
                            "{} cannot be updated (allowed: given_name, family_name, municipality_code, \
                             neighbourhood_code, date_of_death, birth_date)",
                            zvv_platform::error::quote(other)
                        ),
                    );
                    continue;
                }
            };
            if fields.contains(&field) {
                v.add("update_mask", format!("names {field} twice"));
            }
            fields.push(field);
            changes.extend(change);
        }
        v.into_result()?;
        Ok((id, changes, fields))
    }

    /// The request id and the two subjects of a LinkRelation or UnlinkRelation request, with
    /// every violation (also those `more` adds) reported at once.
    fn parse_pair<T>(
        request_id: &str,
        parent: &str,
        child: &str,
        more: impl FnOnce(&mut Violations) -> Option<T>,
    ) -> Result<(Uuid, Uuid, T), ApiError> {
        let mut v = Violations::default();
        if let Err(e) = idempotency::check_request_id("request_id", request_id) {
            for (f, why) in e.violations() {
                v.add(f, why.clone());
            }
        }
        let p = v.check(
            "parent_subject_id",
            parse_id("parent_subject_id", parent).map_err(first_violation),
        );
        let c = v.check(
            "child_subject_id",
            parse_id("child_subject_id", child).map_err(first_violation),
        );
        let extra = more(&mut v);
        if let (Some(p), Some(c)) = (p, c)
            && p == c
        {
            v.add(
                "child_subject_id",
                "must differ from parent_subject_id: a subject cannot be its own parent",
            );
        }
        v.into_result()?;
        match (p, c, extra) {
            (Some(p), Some(c), Some(x)) => Ok((p, c, x)),
            _ => Err(ApiError::internal("validation passed with a missing field")),
        }
    }

    pub async fn link(
        &self,
        ctx: &CallContext,
        request_id: &str,
        parent: &str,
        child: &str,
        kind: Option<RelationKind>,
        source: Option<RelationSource>,
    ) -> Result<Relation, ApiError> {
        let parsed = Self::parse_pair(request_id, parent, child, |v| {
            let k = v.check("kind", kind.ok_or("must be PARENT or GUARDIAN"));
            let s = v.check(
                "source",
                source.ok_or("is required: BRP, COURT_ORDER or DECLARATION"),
            );
            k.zip(s)
        });
        let (parent, child, (kind, source)) = parsed?;
        ctx.attach([parent, child]);
        let key = Key {
            scope: scope(ctx, "LinkRelation"),
            request_id: request_id.to_owned(),
            fingerprint: self.vault.fingerprint(
                "LinkRelation",
                format!(
                    "{parent}\u{1f}{child}\u{1f}{}\u{1f}{}",
                    kind.as_str(),
                    source.as_str()
                )
                .as_bytes(),
            ),
        };
        let relation = Relation {
            parent,
            child,
            kind,
            source: Some(source),
            created_at: self.now(),
        };
        let jurisdiction = ctx.principal().jurisdiction();
        match self.store.link(ctx, &jurisdiction, relation, key).await? {
            LinkOutcome::Linked(r) | LinkOutcome::Replayed(r) => Ok(r),
            LinkOutcome::Missing(unseen) => Err(missing(unseen)),
            LinkOutcome::Exists => Err(ApiError::AlreadyExists {
                message: "this relation is already recorded".into(),
                reason: "RELATION_ALREADY_LINKED",
                metadata: HashMap::new(),
            }),
            LinkOutcome::Cycle => Err(ApiError::FailedPrecondition(
                "the child is already an ancestor of the parent: the relation would make a cycle"
                    .into(),
            )),
        }
    }

    pub async fn unlink(
        &self,
        ctx: &CallContext,
        request_id: &str,
        parent: &str,
        child: &str,
        reason: Option<UnlinkReason>,
    ) -> Result<Relation, ApiError> {
        let parsed = Self::parse_pair(request_id, parent, child, |v| {
            v.check(
                "reason",
                reason.ok_or(
                    "is required: RECORDED_IN_ERROR, WRONG_PERSON, SOURCE_CORRECTED or CUSTODY_ENDED",
                ),
            )
        });
        let (parent, child, reason) = parsed?;
        ctx.attach([parent, child]);
        let key = Key {
            scope: scope(ctx, "UnlinkRelation"),
            request_id: request_id.to_owned(),
            fingerprint: self.vault.fingerprint(
                "UnlinkRelation",
                format!("{parent}\u{1f}{child}\u{1f}{}", reason.as_str()).as_bytes(),
            ),
        };
        let jurisdiction = ctx.principal().jurisdiction();
        match self
            .store
            .unlink(
                ctx,
                &jurisdiction,
                Unlink {
                    parent,
                    child,
                    reason,
                },
                key,
                self.now(),
            )
            .await?
        {
            UnlinkOutcome::Unlinked(r) | UnlinkOutcome::Replayed(r) => Ok(r),
            UnlinkOutcome::Missing(unseen) => Err(missing(unseen)),
            UnlinkOutcome::NoRelation => Err(ApiError::NotFound(
                "the parent and child have no such relation".into(),
            )),
        }
    }

    pub async fn list_relations(
        &self,
        ctx: &CallContext,
        subject_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<RelationPage, ApiError> {
        let mut v = Violations::default();
        let id = v.take("subject_id", parse_id("subject_id", subject_id));
        let size = v.take("page_size", paging::page_size(page_size));
        let after = v.take("page_token", paging::id_cursor::<2>(page_token));
        v.into_result()?;
        let (Some(id), Some(size), Some(after)) = (id, size, after) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        ctx.attach([id]);
        let jurisdiction = ctx.principal().jurisdiction();
        let found = self
            .store
            .list_relations(
                ctx,
                &jurisdiction,
                id,
                after.map(|[p, c]| (p, c)),
                size + 1,
                self.now(),
            )
            .await?;
        let (relations, next) = paging::page(visible(id, found)?, size, |r| (r.parent, r.child));
        Ok(RelationPage { relations, next })
    }

    pub async fn family(&self, ctx: &CallContext, subject_id: &str) -> Result<Family, ApiError> {
        let id = parse_id("subject_id", subject_id)?;
        ctx.attach([id]);
        let jurisdiction = ctx.principal().jurisdiction();
        let found = self
            .store
            .family(ctx, &jurisdiction, id, self.now())
            .await?;
        visible(id, found)
    }

    /// Everything a suite service needs about one subject, in one transaction and one audit
    /// record: its facts and its families. With a BSN and `create_if_missing`, an unknown
    /// subject is registered with the given facts.
    pub async fn context(
        &self,
        ctx: &CallContext,
        subject: ContextSubject,
        create_if_missing: bool,
        facts: &CreateFacts,
    ) -> Result<(Resolved, Vec<ParentFamily>), ApiError> {
        let now = self.now();
        let (key, create, lookup_ref) = match subject {
            ContextSubject::Id(text) => {
                let id = parse_id("subject_id", &text)?;
                ctx.attach([id]);
                (ContextKey::Id(id), None, None)
            }
            ContextSubject::Bsn(text) => {
                let (bsn, municipality, birth_date) = self.parse_resolve(&text, facts)?;
                let lookup_ref = self.vault.lookup_ref(&bsn);
                ctx.attach([lookup_ref]);
                let create = create_if_missing
                    .then(|| self.bare_subject(&bsn, municipality, birth_date, now));
                let key = ContextKey::Bsn {
                    lookup: self.vault.lookup_key(&bsn),
                    lookup_ref,
                };
                (key, create, Some(lookup_ref))
            }
            ContextSubject::Missing => {
                return Err(ApiError::invalid(
                    "subject",
                    "a bsn or a subject_id is required",
                ));
            }
        };
        match self.store.context(ctx, key, create, now).await? {
            Some(SubjectContext {
                subject,
                created,
                families,
            }) => Ok((
                Resolved {
                    subject: self.to_subject(subject)?,
                    created,
                    lookup_ref: lookup_ref.unwrap_or_else(Uuid::nil),
                },
                families,
            )),
            None => Err(match lookup_ref {
                Some(r) => unknown_bsn(r),
                None => ApiError::NotFound("no subject with this subject_id".into()),
            }),
        }
    }
}

/// How a GetSubjectContext request names the subject, unchecked.
#[derive(Clone)]
pub enum ContextSubject {
    Bsn(String),
    Id(String),
    Missing,
}

impl std::fmt::Debug for ContextSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bsn(_) => f.write_str("Bsn(<redacted>)"),
            Self::Id(id) => write!(f, "Id({id})"),
            Self::Missing => f.write_str("Missing"),
        }
    }
}

/// NOT_FOUND for an unknown BSN, with its lookup reference.
fn unknown_bsn(lookup_ref: Uuid) -> ApiError {
    ApiError::NotFoundWithInfo {
        message: "no subject with this BSN is registered (set create_if_missing to register one)"
            .into(),
        reason: "SUBJECT_NOT_REGISTERED",
        metadata: HashMap::from([("lookup_ref".to_owned(), lookup_ref.to_string())]),
    }
}

/// The values an UpdateSubject request carries for the fields in its mask.
#[derive(Debug, Clone, Default)]
pub struct UpdateValues {
    pub given_name: String,
    pub family_name: String,
    pub municipality_code: String,
    pub neighbourhood_code: String,
    pub date_of_death: String,
    pub birth_date: String,
}

fn first_violation(e: ApiError) -> String {
    e.violations()
        .first()
        .map(|(_, why)| why.clone())
        .unwrap_or_default()
}

/// The same answer for an unknown subject and one outside the caller's jurisdiction.
fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("subject {id} not found"))
}

/// A subject of a relation request that is unknown or outside the caller's jurisdiction (the
/// same answer; the audit tells them apart).
fn missing(unseen: Unseen) -> ApiError {
    let message = format!("no subject with the given {}", unseen.field);
    if unseen.outside {
        ApiError::OutsideJurisdiction(message)
    } else {
        ApiError::NotFound(message)
    }
}

/// What the caller may see of subject `id`, or the same NOT_FOUND for an unknown subject and
/// for one outside the jurisdiction.
fn visible<T>(id: Uuid, found: Visible<T>) -> Result<T, ApiError> {
    match found {
        Visible::Yes(t) => Ok(t),
        Visible::Outside => Err(ApiError::OutsideJurisdiction(not_found(id).to_string())),
        Visible::Missing => Err(not_found(id)),
    }
}

/// The rules an update must keep, checked against the stored subject.
fn apply_changes(row: &mut SubjectRow, changes: Vec<SubjectChange>) -> Result<(), ApiError> {
    for change in changes {
        match change {
            SubjectChange::GivenName(n) => row.given_name = Some(n),
            SubjectChange::FamilyName(n) => row.family_name = Some(n),
            SubjectChange::Municipality(m) => row.municipality_code = Some(m.as_str().to_owned()),
            SubjectChange::Neighbourhood(w) => row.neighbourhood_code = Some(w.as_str().to_owned()),
            SubjectChange::DateOfDeath(d) => row.date_of_death = d,
            SubjectChange::BirthDate(d) => match row.birth_date {
                Some(known) if known != d => {
                    return Err(ApiError::FailedPrecondition(
                        "the birth date is already known and cannot be changed here".into(),
                    ));
                }
                _ => row.birth_date = Some(d),
            },
        }
    }
    if let (Some(m), Some(w)) = (&row.municipality_code, &row.neighbourhood_code)
        && w.get(2..6) != m.get(2..6)
    {
        return Err(ApiError::invalid(
            "subject.neighbourhood_code",
            format!("does not lie in municipality {m}"),
        ));
    }
    if let (Some(birth), Some(death)) = (row.birth_date, row.date_of_death)
        && death < birth
    {
        return Err(ApiError::invalid(
            "subject.date_of_death",
            "must not be before the birth date",
        ));
    }
    Ok(())
}
