//! Intake's domain: subjects and relations, parsed and checked at the boundary. Knows neither
//! tonic nor sqlx.

mod codes;
mod subject;

pub use codes::{MunicipalityCode, NeighbourhoodCode};
pub use subject::{
    Family, NewSubject, Relation, RelationKind, Subject, SubjectChange, Violations,
    parse_birth_date, parse_date_of_death, parse_name,
};
