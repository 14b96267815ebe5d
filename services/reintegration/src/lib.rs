//! reintegration: the re-integration programme of the zvv suite (short detentions, DESIGN.md
//! §1.2 and §3). This first part holds the domain: the detention episode that events make in
//! whatever order they arrive, and the versioned continuity policy that computes, per basic
//! condition, its first status and the actions due with their dates. The service (gRPC,
//! storage, monitor) follows on top of it.

pub mod domain;
