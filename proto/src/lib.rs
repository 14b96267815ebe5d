//! The zvv protobuf contract: generated messages, clients and servers, one module per versioned
//! package, plus the encoded descriptor set that servers publish through gRPC reflection.
//!
//! `tonic` and `prost` are re-exported so that every crate of the suite uses one version.

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `FileDescriptorSet` of every zvv proto file (and the well-known types they import).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/zvv_descriptor.bin"));

pub mod intake {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("zvv.intake.v1");
    }
}
