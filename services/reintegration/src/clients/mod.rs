//! What reintegration needs of other services: intake, to turn a BSN into the subject id it
//! keeps (registering an unknown person). The port and its gRPC implementation are the
//! platform's ([`zvv_platform::intake`]); only intake sees a BSN.

pub use zvv_platform::intake::{Intake, IntakeClient, IntakeService, Lookup, SubjectRef};
