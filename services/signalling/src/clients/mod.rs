//! What signalling needs of other services, as ports the logic calls: intake, through the
//! platform's port and its gRPC implementation ([`zvv_platform::intake`]). Only intake sees a
//! BSN: signalling keeps the `subject_id` it gets back.

pub use zvv_platform::intake::{
    Family, Intake, IntakeClient, IntakeService, Lookup, NewSubjectFacts, SubjectContext,
    SubjectRef,
};
