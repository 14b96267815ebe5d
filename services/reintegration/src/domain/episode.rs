//! A detention episode as its events make it. The prison system sends begin, leave and end of
//! detention (and transfers) per episode, identified by its own `external_ref`; messages can be
//! repeated and can arrive out of order. The episode is a fold over its events in the order of
//! the days they happened, never of their arrival, so any arrival order gives the same episode
//! and no event is refused for coming late.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Begin,
    Transfer,
    LeaveStart,
    LeaveEnd,
    End,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "BEGIN",
            Self::Transfer => "TRANSFER",
            Self::LeaveStart => "LEAVE_START",
            Self::LeaveEnd => "LEAVE_END",
            Self::End => "END",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "BEGIN" => Some(Self::Begin),
            "TRANSFER" => Some(Self::Transfer),
            "LEAVE_START" => Some(Self::LeaveStart),
            "LEAVE_END" => Some(Self::LeaveEnd),
            "END" => Some(Self::End),
            _ => None,
        }
    }
}

/// Adult prison (PI) or youth institution (JJI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionType {
    Pi,
    Jji,
}

impl InstitutionType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PI" => Some(Self::Pi),
            "JJI" => Some(Self::Jji),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pi => "PI",
            Self::Jji => "JJI",
        }
    }
}

/// One message of the prison system, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetentionEvent {
    pub kind: EventKind,
    pub occurred_on: NaiveDate,
    pub institution_code: String,
    pub institution_type: InstitutionType,
    pub expected_release_on: Option<NaiveDate>,
    pub received_at: DateTime<Utc>,
}

/// Two messages are the same event when they are of the same kind on the same day (two leaves
/// on different days are two events).
pub fn is_duplicate(recorded: &[DetentionEvent], new: &DetentionEvent) -> bool {
    recorded
        .iter()
        .any(|e| e.kind == new.kind && e.occurred_on == new.occurred_on)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeStatus {
    Detained,
    OnLeave,
    Released,
}

impl EpisodeStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "DETAINED" => Some(Self::Detained),
            "ON_LEAVE" => Some(Self::OnLeave),
            "RELEASED" => Some(Self::Released),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detained => "DETAINED",
            Self::OnLeave => "ON_LEAVE",
            Self::Released => "RELEASED",
        }
    }
}

/// What the events of one episode say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub status: EpisodeStatus,
    /// The day of the BEGIN, or of the earliest event while no BEGIN has arrived.
    pub began_on: NaiveDate,
    /// False while the BEGIN has not arrived (the start is provisional).
    pub begin_received: bool,
    /// The day of the END, once it has arrived.
    pub released_on: Option<NaiveDate>,
    /// The latest expected release date any event gave (by the day of the event).
    pub expected_release_on: Option<NaiveDate>,
    pub institution_code: String,
    pub institution_type: InstitutionType,
    pub leaves: u32,
}

impl Episode {
    /// Days from the start to the release (when released) or to the expected release.
    pub fn stay_days(&self) -> Option<i64> {
        self.released_on
            .or(self.expected_release_on)
            .map(|end| (end - self.began_on).num_days())
    }
}

/// The episode the events make, in whatever order they arrived: by day, then on one day
/// BEGIN, TRANSFER, LEAVE_START, LEAVE_END, END, then by arrival. `None` without events.
pub fn fold(events: &[DetentionEvent]) -> Option<Episode> {
    let mut ordered: Vec<&DetentionEvent> = events.iter().collect();
    ordered.sort_by_key(|e| (e.occurred_on, e.kind, e.received_at));
    let first = ordered.first()?;
    let begin = ordered.iter().find(|e| e.kind == EventKind::Begin);
    let mut episode = Episode {
        status: EpisodeStatus::Detained,
        began_on: begin.map_or(first.occurred_on, |b| b.occurred_on),
        begin_received: begin.is_some(),
        released_on: None,
        expected_release_on: None,
        institution_code: first.institution_code.clone(),
        institution_type: first.institution_type,
        leaves: 0,
    };
    for e in ordered {
        episode.status = match e.kind {
            EventKind::Begin | EventKind::Transfer | EventKind::LeaveEnd => EpisodeStatus::Detained,
            EventKind::LeaveStart => EpisodeStatus::OnLeave,
            EventKind::End => EpisodeStatus::Released,
        };
        if e.kind == EventKind::LeaveStart {
            episode.leaves += 1;
        }
        if e.kind == EventKind::End {
            episode.released_on = Some(e.occurred_on);
        } else if e.kind == EventKind::Begin
            && episode.released_on.is_some_and(|r| r < e.occurred_on)
        {
            // detained again after a release under the same reference: the release is over
            episode.released_on = None;
        }
        if e.expected_release_on.is_some() {
            episode.expected_release_on = e.expected_release_on;
        }
        episode.institution_code.clone_from(&e.institution_code);
        episode.institution_type = e.institution_type;
    }
    Some(episode)
}

/// A stored episode: what its events make, with who it is about, who is responsible and what
/// the release recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detention {
    pub id: Uuid,
    pub external_ref: String,
    pub subject_id: Uuid,
    pub municipality_code: String,
    pub status: String,
    pub began_on: NaiveDate,
    pub begin_received: bool,
    pub expected_release_on: Option<NaiveDate>,
    pub released_on: Option<NaiveDate>,
    pub institution_code: String,
    pub institution_type: String,
    pub leaves: u32,
    pub policy_version: u32,
    pub short_stay: bool,
    pub follow_up_until: Option<NaiveDate>,
    pub redetained_within_months: Option<u32>,
    pub ready_at_release: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Detention {
    /// The episode as a partner with a task sees it: without what concerns the person's history
    /// (re-detention, a fact for evaluation, not for the partners) or the plan as a whole
    /// (readiness, of which the partner sees only its own conditions).
    pub fn for_partner(mut self) -> Self {
        self.redetained_within_months = None;
        self.ready_at_release = None;
        self
    }

    /// The release, or the expected release while there is none.
    pub fn release_on(&self) -> Option<NaiveDate> {
        self.released_on.or(self.expected_release_on)
    }
}

/// Re-detention: the months (12 or 24) within which `began_on` follows the latest earlier
/// release in `releases`, if it does within 24.
pub fn redetained_within(releases: &[NaiveDate], began_on: NaiveDate) -> Option<u32> {
    let latest = releases.iter().filter(|r| **r < began_on).max()?;
    let within = |months: u32| {
        latest
            .checked_add_months(chrono::Months::new(months))
            .is_some_and(|limit| began_on <= limit)
    };
    if within(12) {
        Some(12)
    } else if within(24) {
        Some(24)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn ev(kind: EventKind, on: &str, received_minute: u32) -> DetentionEvent {
        DetentionEvent {
            kind,
            occurred_on: d(on),
            institution_code: "PI-VUGHT".into(),
            institution_type: InstitutionType::Pi,
            expected_release_on: (kind == EventKind::Begin).then(|| d("2026-03-01")),
            received_at: DateTime::from_timestamp(
                1_767_225_600 + i64::from(received_minute) * 60,
                0,
            )
            .unwrap(),
        }
    }

    #[test]
    fn any_arrival_order_makes_the_same_episode() {
        let events = [
            ev(EventKind::Begin, "2026-01-05", 0),
            ev(EventKind::LeaveStart, "2026-01-20", 1),
            ev(EventKind::LeaveEnd, "2026-01-22", 2),
            ev(EventKind::End, "2026-02-27", 3),
        ];
        let expected = fold(&events).unwrap();
        assert_eq!(expected.status, EpisodeStatus::Released);
        assert_eq!(expected.began_on, d("2026-01-05"));
        assert_eq!(expected.released_on, Some(d("2026-02-27")));
        assert_eq!(expected.expected_release_on, Some(d("2026-03-01")));
        assert_eq!(expected.leaves, 1);
        assert_eq!(expected.stay_days(), Some(53));
        // END before the LEAVE_END, BEGIN after the END: the same episode
        let shuffled = [
            events[3].clone(),
            events[2].clone(),
            events[0].clone(),
            events[1].clone(),
        ];
        assert_eq!(fold(&shuffled).unwrap(), expected);
    }

    #[test]
    fn without_a_begin_the_start_is_provisional_and_leaves_count() {
        let episode = fold(&[
            ev(EventKind::LeaveStart, "2026-01-20", 0),
            ev(EventKind::LeaveEnd, "2026-01-20", 1),
        ])
        .unwrap();
        assert!(!episode.begin_received);
        assert_eq!(episode.began_on, d("2026-01-20"));
        // a day leave: out and back on one day
        assert_eq!(episode.status, EpisodeStatus::Detained);
        assert!(fold(&[]).is_none());
        let on_leave = fold(&[
            ev(EventKind::Begin, "2026-01-05", 0),
            ev(EventKind::LeaveStart, "2026-01-20", 1),
        ])
        .unwrap();
        assert_eq!(on_leave.status, EpisodeStatus::OnLeave);
    }

    #[test]
    fn duplicates_are_the_same_kind_on_the_same_day() {
        let recorded = [ev(EventKind::LeaveStart, "2026-01-20", 0)];
        assert!(is_duplicate(
            &recorded,
            &ev(EventKind::LeaveStart, "2026-01-20", 5)
        ));
        assert!(!is_duplicate(
            &recorded,
            &ev(EventKind::LeaveStart, "2026-02-03", 5)
        ));
        assert!(!is_duplicate(
            &recorded,
            &ev(EventKind::LeaveEnd, "2026-01-20", 5)
        ));
    }

    #[test]
    fn a_new_begin_after_a_release_reopens_the_episode() {
        let episode = fold(&[
            ev(EventKind::Begin, "2026-01-05", 0),
            ev(EventKind::End, "2026-02-01", 1),
            ev(EventKind::Begin, "2026-02-10", 2),
        ])
        .unwrap();
        assert_eq!(episode.status, EpisodeStatus::Detained);
        assert_eq!(episode.released_on, None);
        for kind in [
            EventKind::Begin,
            EventKind::Transfer,
            EventKind::LeaveStart,
            EventKind::LeaveEnd,
            EventKind::End,
        ] {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn re_detention_within_12_or_24_months_of_the_latest_release() {
        let releases = [d("2024-01-10"), d("2025-03-01")];
        assert_eq!(redetained_within(&releases, d("2026-03-01")), Some(12));
        assert_eq!(redetained_within(&releases, d("2026-03-02")), Some(24));
        assert_eq!(redetained_within(&releases, d("2027-03-02")), None);
        assert_eq!(
            redetained_within(&releases, d("2025-02-01")),
            Some(24),
            "only releases before the start count"
        );
        assert_eq!(redetained_within(&[], d("2026-01-01")), None);
    }
}
