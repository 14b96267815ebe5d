//! The events signalling takes from other suite services (delivered to its EventSink by
//! notifications):
//!
//! - `intake.subject.deceased`: everything about the subject is destroyed, as at the age limit,
//!   once intake confirms the death (a delivery is no proof of it).
//! - `intake.relation.linked` / `intake.relation.unlinked`: the parent's family match is
//!   brought up to date with the family as intake knows it now, so that deliveries in any order
//!   end in the same state.
//!
//! Every other event is taken without a change. Each delivery is taken once (by event id).

use zvv_platform::{
    audit::CallContext,
    clock::SharedClock,
    error::ApiError,
    sink::{Handled, ReceivedEvent, Wanted},
};

use crate::{
    clients::{Intake, Lookup, SubjectRef},
    store::{Begun, Delivery, EventStore},
};

/// The channels signalling's EventSink is subscribed to: intake's deaths and relations.
pub static SUBSCRIBED: &[Wanted] = &[
    Wanted {
        channel: "intake.subjects",
        filters: &[("action", "deceased")],
    },
    Wanted {
        channel: "intake.relations",
        filters: &[],
    },
];

/// What an event means to signalling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Deceased {
        subject: uuid::Uuid,
    },
    RelationChanged {
        parent: uuid::Uuid,
        child: uuid::Uuid,
    },
    Nothing,
}

fn meaning(event: &ReceivedEvent) -> Result<Meaning, ApiError> {
    Ok(match event.event_type().as_str() {
        "intake.subject.deceased" => Meaning::Deceased {
            subject: event.id("subject_id")?,
        },
        "intake.relation.linked" | "intake.relation.unlinked" => Meaning::RelationChanged {
            parent: event.id("parent_subject_id")?,
            child: event.id("child_subject_id")?,
        },
        _ => Meaning::Nothing,
    })
}

/// The logic of signalling's EventSink.
pub struct EventLogic<S, I> {
    store: S,
    intake: I,
    clock: SharedClock,
}

impl<S: EventStore, I: Intake> EventLogic<S, I> {
    pub fn new(store: S, intake: I, clock: SharedClock) -> Self {
        Self {
            store,
            intake,
            clock,
        }
    }

    /// Takes one delivered event (see the module docs).
    pub async fn take(
        &self,
        ctx: &CallContext,
        event: &ReceivedEvent,
    ) -> Result<Handled, ApiError> {
        let meaning = meaning(event)?;
        let ids = match meaning {
            Meaning::Deceased { subject } => vec![subject],
            Meaning::RelationChanged { parent, child } => vec![parent, child],
            Meaning::Nothing => Vec::new(),
        };
        ctx.attach(ids.iter().copied());
        let now = self.clock.now();
        let delivery = match self
            .store
            .begin_delivery(ctx, event.event_id, &ids, now)
            .await?
        {
            Begun::Replayed(()) => return Ok(Handled::Duplicate),
            Begun::Fresh(delivery) => delivery,
        };
        let user = ctx.end_user_or_caller();
        match meaning {
            Meaning::Deceased { subject } => {
                match self
                    .intake
                    .subject_context(&user, &SubjectRef::Id(subject), None)
                    .await?
                {
                    Lookup::Found(found) if found.date_of_death.is_none() => {
                        return Err(ApiError::FailedPrecondition(format!(
                            "intake records no death of subject {subject}: nothing is destroyed"
                        )));
                    }
                    // dead, or no longer in the registry: nothing may be kept about them
                    Lookup::Found(_) | Lookup::Unknown { .. } => {}
                }
                let destroyed = delivery.destroy_subject(ctx, subject, now).await?;
                tracing::info!(
                    subject_id = %subject,
                    signals = destroyed.signals.len(),
                    referrals = destroyed.referrals.len(),
                    matches_left = destroyed.left.len(),
                    "destroyed what signalling held about a deceased subject"
                );
            }
            Meaning::RelationChanged { parent, child } => {
                let children = match self
                    .intake
                    .subject_context(&user, &SubjectRef::Id(child), None)
                    .await?
                {
                    Lookup::Found(found) => found
                        .families
                        .into_iter()
                        .find(|f| f.parent == parent)
                        .map(|f| f.children),
                    Lookup::Unknown { .. } => None,
                };
                let changed = delivery.refamily(ctx, parent, child, children, now).await?;
                ctx.attach(changed);
            }
            Meaning::Nothing => delivery.acknowledge(ctx, ids, now).await?,
        }
        Ok(Handled::Taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, attributes: &[(&str, String)]) -> ReceivedEvent {
        let mut parts = event_type.split('.');
        ReceivedEvent {
            event_id: uuid::Uuid::now_v7(),
            source: parts.next().unwrap_or_default().into(),
            channel: String::new(),
            resource: parts.next().unwrap_or_default().into(),
            resource_id: String::new(),
            action: parts.next().unwrap_or_default().into(),
            occurred_at: None,
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            audience_organisations: Default::default(),
            audience_municipalities: Default::default(),
            trace_parent: String::new(),
        }
    }

    #[test]
    fn events_mean_what_their_type_says_and_name_missing_attributes() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            meaning(&event(
                "intake.subject.deceased",
                &[("subject_id", id.to_string())]
            ))
            .unwrap(),
            Meaning::Deceased { subject: id }
        );
        let err = meaning(&event("intake.subject.deceased", &[])).unwrap_err();
        assert_eq!(err.violations()[0].0, "event.attributes.subject_id");
        let err = meaning(&event(
            "intake.relation.unlinked",
            &[("parent_subject_id", id.to_string())],
        ))
        .unwrap_err();
        assert_eq!(err.violations()[0].0, "event.attributes.child_subject_id");
        assert_eq!(
            meaning(&event("intake.subject.registered", &[])).unwrap(),
            Meaning::Nothing
        );
    }
}
