//! Compiles the protobuf contract with protox (pure Rust, no `protoc` needed) and generates the
//! tonic clients and servers plus one encoded descriptor set for gRPC reflection.

use std::{env, fs, path::PathBuf};

/// Messages with a `bsn` field.
const BSN_MESSAGES: [&str; 6] = [
    ".zvv.intake.v1.RegisterSubjectRequest",
    ".zvv.intake.v1.ResolveSubjectRequest",
    ".zvv.intake.v1.GetSubjectContextRequest",
    ".zvv.signalling.v1.RegisterSignalRequest",
    ".zvv.signalling.v1.SubmitReferralRequest",
    ".zvv.reintegration.v1.RecordDetentionEventRequest",
];

/// Messages with a secret (a webhook's Authorization value, a signing secret).
const SECRET_MESSAGES: [&str; 2] = [
    ".zvv.notifications.v1.WebhookDelivery",
    ".zvv.notifications.v1.CreateSubscriptionResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=zvv");
    println!("cargo:rerun-if-changed=build.rs");

    let files = proto_files(&PathBuf::from("zvv"))?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, ["."])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("zvv_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // messages that carry a BSN or a secret get a hand-written Debug that hides it
        // (src/lib.rs)
        .skip_debug(BSN_MESSAGES)
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(fds)?;
    Ok(())
}

/// Every `.proto` file under `dir`, sorted so the build is reproducible.
fn proto_files(dir: &PathBuf) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(proto_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
