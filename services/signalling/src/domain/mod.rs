//! Signalling's domain: signals, matches (with the one match rule), referrals and statistics,
//! and the rules on them; contacts are the platform's. Knows neither tonic nor sqlx.

pub mod matches;
pub mod referrals;
pub mod signals;
pub mod statistics;

pub use matches::{
    Coordinator, Family, Match, MatchKind, MatchSignal, MatchStep, after_leaving,
    after_registration, forms_match,
};
pub use referrals::{
    Decision, Level, Referral, add_working_days, parse_instrument, parse_rationale,
};
pub use signals::{
    AGE_LIMIT, CloseReason, InformationDuty, Signal, SignalStatus, Unregistrable, age_on, expiry,
    latest_birth_date_at_age_limit, parse_postponement_reason, registrable,
};
pub use statistics::{
    AgeBand, MAX_PERIOD_MONTHS, StatisticsCell, StatisticsRow, cells, parse_period,
};
pub use zvv_platform::contact::{Contact, parse_contact_name, parse_email, parse_phone};
