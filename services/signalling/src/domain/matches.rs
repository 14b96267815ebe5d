//! Matches and THE match rule: who forms a match and when it closes. Registration, closing,
//! expiry and destruction all decide through [`after_registration`] and [`after_leaving`], and
//! every change of a match is announced with one event payload ([`MatchStep::event`]).
//!
//! - A CLIENT match is anchored at a subject: active signals of two or more organisations on it.
//! - A FAMILY match is anchored at a parent (or guardian): active signals of two or more
//!   organisations on two or more of the parent's children.
//! - A new active signal on the anchor's subjects joins its open match; a signal that is closed,
//!   expires or is destroyed leaves it; a match that no longer holds by the rule is closed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Contact, Signal};

/// A match needs signals of at least this many organisations.
pub const MIN_ORGANISATIONS: usize = 2;
/// A family match needs signals on at least this many children.
pub const MIN_CHILDREN: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    Client,
    Family,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "CLIENT",
            Self::Family => "FAMILY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CLIENT" => Some(Self::Client),
            "FAMILY" => Some(Self::Family),
            _ => None,
        }
    }
}

/// The coordinator (regievoerder) of a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinator {
    pub organisation: String,
    pub contact: Contact,
    pub assigned_at: DateTime<Utc>,
}

/// A match with the signals in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub id: Uuid,
    pub kind: MatchKind,
    pub open: bool,
    pub signals: Vec<Signal>,
    pub coordinator: Option<Coordinator>,
    pub coordinated: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A parent (or guardian) and all of their children, as intake relates them: the anchor of a
/// family match.
pub use zvv_platform::intake::Family;

/// A signal as the match rule sees it: whose it is and about whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSignal {
    pub signal_id: Uuid,
    pub subject_id: Uuid,
    pub organisation: String,
}

fn distinct<T: Ord>(mut items: Vec<T>) -> usize {
    items.sort_unstable();
    items.dedup();
    items.len()
}

/// Who forms a match: `signals` (active, on the anchor's subjects) of two or more organisations,
/// and for a family match on two or more children.
pub fn forms_match(kind: MatchKind, signals: &[MatchSignal]) -> bool {
    let organisations = distinct(signals.iter().map(|s| s.organisation.as_str()).collect());
    let subjects = distinct(signals.iter().map(|s| s.subject_id).collect());
    organisations >= MIN_ORGANISATIONS && (kind == MatchKind::Client || subjects >= MIN_CHILDREN)
}

/// What a change of signals does to the match of one anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchStep {
    /// Nothing changes.
    Unchanged,
    /// A match of these signals opens.
    Open(Vec<Uuid>),
    /// These signals join the open match.
    Join(Vec<Uuid>),
    /// Signals left the open match, which still holds.
    Shrink,
    /// The open match no longer holds and is closed.
    Close,
}

impl MatchStep {
    /// The type of the event that announces this step. Every match event carries the same
    /// payload: the `match_id` and the `kind` code.
    pub fn event(&self) -> Option<&'static str> {
        match self {
            Self::Unchanged => None,
            Self::Open(_) => Some("signalling.match.created"),
            Self::Join(_) | Self::Shrink => Some("signalling.match.updated"),
            Self::Close => Some("signalling.match.closed"),
        }
    }
}

/// After a signal was registered on the anchor's subjects: `open` holds the signals in the
/// anchor's open match (none when there is no open match), `active` every active signal on the
/// anchor's subjects (the subject itself, or the parent's children).
pub fn after_registration(
    kind: MatchKind,
    open: Option<&[Uuid]>,
    active: &[MatchSignal],
) -> MatchStep {
    if !forms_match(kind, active) {
        return match open {
            Some(_) => MatchStep::Close,
            None => MatchStep::Unchanged,
        };
    }
    match open {
        None => MatchStep::Open(active.iter().map(|s| s.signal_id).collect()),
        Some(members) => {
            let added: Vec<Uuid> = active
                .iter()
                .map(|s| s.signal_id)
                .filter(|id| !members.contains(id))
                .collect();
            if added.is_empty() {
                MatchStep::Unchanged
            } else {
                MatchStep::Join(added)
            }
        }
    }
}

/// After signals left an open match (closed, expired or destroyed): `remaining` holds the
/// signals still in it.
pub fn after_leaving(kind: MatchKind, remaining: &[MatchSignal]) -> MatchStep {
    if forms_match(kind, remaining) {
        MatchStep::Shrink
    } else {
        MatchStep::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Signal `n` of `org` on subject `subject`.
    fn s(n: u128, subject: u128, org: &str) -> MatchSignal {
        MatchSignal {
            signal_id: id(n),
            subject_id: id(subject),
            organisation: org.into(),
        }
    }

    #[test]
    fn a_client_match_opens_with_a_second_organisation() {
        let school = s(1, 100, "school");
        assert_eq!(
            after_registration(MatchKind::Client, None, std::slice::from_ref(&school)),
            MatchStep::Unchanged,
            "one organisation alone"
        );
        let both = [school, s(2, 100, "ggd")];
        assert_eq!(
            after_registration(MatchKind::Client, None, &both),
            MatchStep::Open(vec![id(1), id(2)])
        );
        assert_eq!(
            MatchStep::Open(vec![]).event(),
            Some("signalling.match.created")
        );
    }

    #[test]
    fn a_third_organisation_joins_the_open_client_match() {
        let active = [s(1, 100, "school"), s(2, 100, "ggd"), s(3, 100, "police")];
        let members = [id(1), id(2)];
        assert_eq!(
            after_registration(MatchKind::Client, Some(&members), &active),
            MatchStep::Join(vec![id(3)])
        );
        let all = [id(1), id(2), id(3)];
        assert_eq!(
            after_registration(MatchKind::Client, Some(&all), &active),
            MatchStep::Unchanged,
            "nothing new"
        );
    }

    #[test]
    fn a_client_match_closes_below_two_organisations() {
        let remaining = [s(2, 100, "ggd"), s(3, 100, "police")];
        assert_eq!(
            after_leaving(MatchKind::Client, &remaining),
            MatchStep::Shrink
        );
        assert_eq!(MatchStep::Shrink.event(), Some("signalling.match.updated"));
        assert_eq!(
            after_leaving(MatchKind::Client, &remaining[1..]),
            MatchStep::Close
        );
        assert_eq!(after_leaving(MatchKind::Client, &[]), MatchStep::Close);
        assert_eq!(MatchStep::Close.event(), Some("signalling.match.closed"));
        // an open match whose signals no longer hold is closed on registration too
        assert_eq!(
            after_registration(MatchKind::Client, Some(&[id(3)]), &remaining[1..]),
            MatchStep::Close
        );
    }

    #[test]
    fn a_family_match_needs_two_organisations_on_two_children() {
        let family = MatchKind::Family;
        // two organisations on one child: a client match, not a family match
        assert_eq!(
            after_registration(family, None, &[s(1, 100, "school"), s(2, 100, "ggd")]),
            MatchStep::Unchanged
        );
        // one organisation on two children
        assert_eq!(
            after_registration(family, None, &[s(1, 100, "school"), s(2, 101, "school")]),
            MatchStep::Unchanged
        );
        // two organisations on two children
        assert_eq!(
            after_registration(family, None, &[s(1, 100, "school"), s(2, 101, "ggd")]),
            MatchStep::Open(vec![id(1), id(2)])
        );
        // and a third signal on either child joins
        let active = [s(1, 100, "school"), s(2, 101, "ggd"), s(3, 100, "police")];
        assert_eq!(
            after_registration(family, Some(&[id(1), id(2)]), &active),
            MatchStep::Join(vec![id(3)])
        );
    }

    #[test]
    fn a_family_match_closes_below_two_children_or_two_organisations() {
        let family = MatchKind::Family;
        let active = [s(1, 100, "school"), s(2, 101, "ggd"), s(3, 100, "police")];
        assert_eq!(after_leaving(family, &active[1..]), MatchStep::Shrink);
        // two organisations left, but on one child
        assert_eq!(
            after_leaving(family, &[s(1, 100, "school"), s(3, 100, "police")]),
            MatchStep::Close
        );
        // two children left, but of one organisation
        assert_eq!(
            after_leaving(family, &[s(1, 100, "school"), s(4, 101, "school")]),
            MatchStep::Close
        );
    }
}
