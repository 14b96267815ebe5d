//! Intake's domain: subjects and relations, parsed and checked at the boundary. Knows neither
//! tonic nor sqlx.

mod subject;

pub use subject::{
    Family, NewSubject, Relation, RelationKind, RelationSource, Subject, SubjectChange, Unlink,
    UnlinkReason, Violations, parse_birth_date, parse_date_of_death, parse_name, relation_id,
};
pub use zvv_platform::codes::{MunicipalityCode, NeighbourhoodCode};
