//! Matches as their participants see them: listing, reading, assigning a coordinator and
//! marking a match coordinated.

use uuid::Uuid;
use zvv_platform::{
    audit::CallContext,
    contact::parse_contact,
    error::{ApiError, Violations, checked},
    idempotency::{self, Key},
    ids::parse_id,
    paging::{Page, page_of, page_request},
};

use super::{SignalLogic, not_found};
use crate::{
    clients::Intake,
    domain::{Contact, Coordinator, Match},
    store::{MatchChange, MatchOutcome, MatchStore, SignalStore, StatisticsStore},
};

impl<S, I> SignalLogic<S, I>
where
    S: SignalStore + MatchStore + StatisticsStore,
    I: Intake,
{
    pub async fn list_matches(
        &self,
        ctx: &CallContext,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Match>, ApiError> {
        let (size, after) = page_request(page_size, page_token)?;
        let items = self
            .store
            .list_matches(ctx, &ctx.principal().org, after, size + 1, self.now())
            .await?;
        Ok(page_of(items, size, |m| m.id))
    }

    pub async fn get_match(&self, ctx: &CallContext, match_id: &str) -> Result<Match, ApiError> {
        let id = parse_id("match_id", match_id)?;
        ctx.attach([id]);
        self.store
            .get_match(ctx, &ctx.principal().org, id, self.now())
            .await?
            .ok_or_else(|| not_found("match", id))
    }

    pub async fn assign_coordinator(
        &self,
        ctx: &CallContext,
        request_id: &str,
        match_id: &str,
        organisation: &str,
        contact: Option<&Contact>,
    ) -> Result<Match, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("match_id", parse_id("match_id", match_id));
        if organisation.trim().is_empty() {
            v.add("organisation", "is required");
        }
        let contact = parse_contact("contact", contact, &mut v);
        let (id, contact) = checked(v, id.zip(contact))?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "AssignCoordinator",
            request_id,
            &[
                &id.to_string(),
                organisation,
                &contact.name,
                &contact.phone,
                &contact.email,
            ],
        );
        let change = MatchChange::AssignCoordinator(Coordinator {
            organisation: organisation.to_owned(),
            contact,
            assigned_at: self.now(),
        });
        self.change_match(ctx, id, change, &key).await
    }

    pub async fn mark_coordinated(
        &self,
        ctx: &CallContext,
        request_id: &str,
        match_id: &str,
    ) -> Result<Match, ApiError> {
        let mut v = Violations::default();
        idempotency::check_request_id_in(&mut v, request_id);
        let id = v.take("match_id", parse_id("match_id", match_id));
        let id = checked(v, id)?;
        ctx.attach([id]);
        let key = Key::for_caller(
            &self.fingerprints,
            ctx,
            "MarkCoordinated",
            request_id,
            &[&id.to_string()],
        );
        self.change_match(ctx, id, MatchChange::MarkCoordinated, &key)
            .await
    }

    async fn change_match(
        &self,
        ctx: &CallContext,
        id: Uuid,
        change: MatchChange,
        key: &Key,
    ) -> Result<Match, ApiError> {
        match self
            .store
            .change_match(ctx, &ctx.principal().org, id, change, key, self.now())
            .await?
        {
            MatchOutcome::Changed(m) => Ok(*m),
            MatchOutcome::NotFound => Err(ApiError::NotFound(format!(
                "no open match {id} that your organisation is in"
            ))),
            MatchOutcome::CoordinatorNotParticipant => Err(ApiError::FailedPrecondition(
                "the coordinator must be one of the organisations in the match".into(),
            )),
            MatchOutcome::NoCoordinator => Err(ApiError::FailedPrecondition(
                "assign a coordinator before marking the match coordinated".into(),
            )),
        }
    }
}
