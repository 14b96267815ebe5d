//! The logic of ContinuityService: the plan as the caller may see it, conditions set by the
//! responsible municipality (a moved due date needs a reason code), partner tasks, readiness for
//! release, re-planning with the current policy, and the release statistics.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use zvv_platform::{
    audit::CallContext,
    calendar::optional_date,
    clock::SharedClock,
    contact::{Contact, parse_contact},
    error::{ApiError, Violations, checked},
    idempotency::{self, FingerprintKey, Key},
    ids::parse_id,
    paging::{Page, page_of, page_request},
    statistics::{self, Scope},
};

use super::{Settings, found, viewer};
use crate::{
    domain::{
        ConditionStatus, Detention, DueDateReason, MonthStatistics, Plan, PlanCondition, Task,
        months, parse_organisation, parse_partner_type,
    },
    store::{ConditionUpdate, NewTask, PlanStore, StatisticsStore, Visible},
};

/// What an UpdateCondition request carries, unchecked.
#[derive(Debug, Clone)]
pub struct UpdateInput {
    pub request_id: String,
    pub condition_id: String,
    pub status: Option<ConditionStatus>,
    /// The value was not one of the statuses (UNSPECIFIED is `status: None` without this).
    pub status_invalid: bool,
    pub due_on: String,
    pub reason: Option<DueDateReason>,
    pub reason_invalid: bool,
    pub action: String,
}

/// How far ahead ListTasks may look.
pub const MAX_DUE_WITHIN_DAYS: i32 = 366;

/// Readiness for release: per condition, and overall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub detention: Detention,
    pub ready: bool,
    pub conditions: Vec<PlanCondition>,
}

pub struct ContinuityLogic<S> {
    store: S,
    clock: SharedClock,
    settings: Arc<Settings>,
    fingerprints: Arc<FingerprintKey>,
}

impl<S: PlanStore + StatisticsStore> ContinuityLogic<S> {
    pub fn new(
        store: S,
        clock: SharedClock,
        settings: Arc<Settings>,
        fingerprints: Arc<FingerprintKey>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            fingerprints,
        }
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    pub async fn plan(
        &self,
        ctx: &CallContext,
        detention_id: &str,
    ) -> Result<Visible<(Detention, Plan)>, ApiError> {
        let id = parse_id("detention_id", detention_id)?;
        ctx.attach([id]);
        let outcome = self
            .store
            .plan(ctx, &viewer(ctx), id, self.clock.now())
            .await?;
        found(outcome, "detention", id)
    }

    pub async fn update_condition(
        &self,
        ctx: &CallContext,
        input: UpdateInput,
    ) -> Result<PlanCondition, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, &input.request_id);
        let id = v.take(
            "condition_id",
            parse_id("condition_id", &input.condition_id),
        );
        if input.status_invalid {
            v.add("status", "is not a condition status");
        }
        let due_on = optional_date("due_on", &input.due_on, &mut v);
        if input.reason_invalid {
            v.add("reason_code", "is not a due date reason");
        }
        // the rules below look at what was given, so that a malformed date is named once
        let due_given = !input.due_on.is_empty();
        match (due_given, input.reason) {
            (true, None) if !input.reason_invalid => v.add(
                "reason_code",
                "is required when due_on is moved: AUTHORITY_TERM, RELEASE_DATE_CHANGED, \
                 PARTNER_AGREEMENT, PERSON_UNAVAILABLE or AWAITING_DOCUMENT",
            ),
            (false, Some(_)) => v.add("reason_code", "is given only with due_on"),
            _ => {}
        }
        if input.status.is_none() && !due_given && !input.status_invalid {
            v.add("status", "or due_on is required: nothing to update");
        }
        let action = if input.action.is_empty() {
            None
        } else if input.action.len() <= 64
            && input
                .action
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_')
        {
            Some(input.action.clone())
        } else {
            v.add("action", "must be an action code such as VALID_ID");
            None
        };
        if !input.action.is_empty() && !due_given {
            v.add("action", "is given only with due_on");
        }
        let id = checked(v, id)?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "UpdateCondition",
            &input.request_id,
            &[
                &id.to_string(),
                input.status.map_or("", ConditionStatus::as_str),
                &input.due_on,
                input.reason.map_or("", DueDateReason::as_str),
                &input.action,
            ],
        );
        let update = ConditionUpdate {
            condition_id: id,
            status: input.status,
            due: due_on.zip(input.reason).map(|(d, r)| (d, r, action)),
        };
        let outcome = self
            .store
            .update_condition(ctx, &viewer(ctx), update, &key, self.clock.now())
            .await?;
        found(outcome, "condition", id)
    }

    pub async fn assign_task(
        &self,
        ctx: &CallContext,
        request_id: &str,
        condition_id: &str,
        organisation: &str,
        organisation_type: &str,
        contact: Option<&Contact>,
    ) -> Result<Task, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("condition_id", parse_id("condition_id", condition_id));
        let org = v.check("organisation", parse_organisation(organisation));
        let org_type = v.check("organisation_type", parse_partner_type(organisation_type));
        let contact = parse_contact("contact", contact, &mut v);
        let (id, (org, (org_type, contact))) = checked(v, id.zip(org.zip(org_type.zip(contact))))?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "AssignTask",
            request_id,
            &[
                &id.to_string(),
                &org,
                org_type.as_str(),
                &contact.name,
                &contact.phone,
                &contact.email,
            ],
        );
        let task = NewTask {
            condition_id: id,
            organisation: org,
            organisation_type: org_type.as_str().to_owned(),
            contact,
        };
        let outcome = self
            .store
            .assign_task(ctx, &viewer(ctx), task, &key, self.clock.now())
            .await?;
        found(outcome, "condition", id)
    }

    pub async fn complete_task(
        &self,
        ctx: &CallContext,
        request_id: &str,
        task_id: &str,
    ) -> Result<Task, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("task_id", parse_id("task_id", task_id));
        let id = checked(v, id)?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "CompleteTask",
            request_id,
            &[&id.to_string()],
        );
        let outcome = self
            .store
            .complete_task(
                ctx,
                &viewer(ctx),
                id,
                &key,
                self.clock.today(),
                self.clock.now(),
            )
            .await?;
        found(outcome, "task", id)
    }

    pub async fn list_tasks(
        &self,
        ctx: &CallContext,
        due_within_days: i32,
        include_closed: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Task>, ApiError> {
        if !(0..=MAX_DUE_WITHIN_DAYS).contains(&due_within_days) {
            return Err(ApiError::invalid(
                "due_within_days",
                format!("must be 0 (every task) to {MAX_DUE_WITHIN_DAYS}"),
            ));
        }
        let (size, after) = page_request(page_size, page_token)?;
        let due_by = (due_within_days > 0)
            .then(|| self.clock.today() + Duration::days(i64::from(due_within_days)));
        let items = self
            .store
            .list_tasks(
                ctx,
                &viewer(ctx),
                due_by,
                include_closed,
                after,
                size + 1,
                self.clock.now(),
            )
            .await?;
        Ok(page_of(items, size, |t| t.id))
    }

    /// Readiness for release, for the responsible municipality only (a partner's part of the
    /// plan would make a misleading whole).
    pub async fn readiness(
        &self,
        ctx: &CallContext,
        detention_id: &str,
    ) -> Result<Readiness, ApiError> {
        let id = parse_id("detention_id", detention_id)?;
        ctx.attach([id]);
        let outcome = self
            .store
            .plan(ctx, &viewer(ctx), id, self.clock.now())
            .await?;
        let visible = found(outcome, "detention", id)?;
        if !visible.whole {
            return Err(ApiError::OutsideJurisdiction(format!(
                "detention {id} not found"
            )));
        }
        let (detention, plan) = visible.item;
        Ok(Readiness {
            ready: plan.conditions.iter().all(PlanCondition::is_ready),
            detention,
            conditions: plan.conditions,
        })
    }

    pub async fn replan(
        &self,
        ctx: &CallContext,
        request_id: &str,
        detention_id: &str,
    ) -> Result<Plan, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("detention_id", parse_id("detention_id", detention_id));
        let id = checked(v, id)?;
        ctx.attach([id]);
        let policy = &self.settings.policy;
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "ReplanDetention",
            request_id,
            &[&id.to_string(), &policy.version.to_string()],
        );
        let outcome = self
            .store
            .replan(ctx, &viewer(ctx), id, policy, &key, self.clock.now())
            .await?;
        found(outcome, "detention", id)
    }

    /// Release statistics per whole calendar month for a municipality in the analyst's
    /// jurisdiction, numbers resting on fewer people than the threshold suppressed.
    pub async fn statistics(
        &self,
        ctx: &CallContext,
        municipality_code: &str,
        from_month: &str,
        to_month: &str,
    ) -> Result<Vec<MonthStatistics>, ApiError> {
        let Scope {
            municipality,
            from,
            to,
        } = statistics::scope(
            ctx,
            municipality_code,
            from_month,
            to_month,
            self.clock.today(),
        )?;
        let facts = self
            .store
            .release_facts(ctx, municipality.as_str(), from, to, self.clock.now())
            .await?;
        Ok(months(&facts, from, to, self.settings.statistics_threshold))
    }

    pub fn threshold(&self) -> u32 {
        self.settings.statistics_threshold
    }
}
