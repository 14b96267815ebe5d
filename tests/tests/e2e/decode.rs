//! Requests that cannot be decoded are the caller's fault: every RPC of every service answers
//! them INVALID_ARGUMENT with a short message, and audits them as invalid.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use prost::Message;
use tonic::Code;
use tower::ServiceExt;
use zvv_devkit::testkit::matrix::{self, Column};
use zvv_e2e::Harness;
use zvv_platform::{
    auth::{OrgType, Role},
    policy::{Policy, Rule},
};
use zvv_proto::prost_types::{DescriptorProto, FileDescriptorSet, field_descriptor_proto::Type};

/// One malformed request: what it is, and the request body.
struct Case {
    name: &'static str,
    body: Bytes,
}

/// A gRPC length-prefixed message frame.
fn frame(flag: u8, message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(u32::try_from(message.len()).expect("small"));
    b.put_slice(message);
    b.freeze()
}

fn tag(field: u32, wire_type: u32) -> Vec<u8> {
    varint(u64::from(field << 3 | wire_type))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The malformed requests for an RPC whose request message is `input`.
fn cases(input: &DescriptorProto) -> Vec<Case> {
    let framed = |name, message: Vec<u8>| Case {
        name,
        body: frame(0, &message),
    };
    let mut cases = vec![
        // field number 0 is never valid, whatever follows
        framed("random bytes after a zero tag", {
            let mut m = vec![0x00];
            m.extend((0u8..63).map(|i| i.wrapping_mul(151).wrapping_add(7)));
            m
        }),
        framed("an invalid varint", vec![0xff; 11]),
        // a length-delimited field that claims more bytes than follow
        framed("a truncated message", {
            let mut m = tag(1, 2);
            m.extend(varint(50));
            m.extend(b"abc");
            m
        }),
        // nested groups past the decoder's recursion limit
        framed("deep nesting", {
            let mut m = Vec::new();
            for _ in 0..200 {
                m.extend(tag(999, 3));
            }
            for _ in 0..200 {
                m.extend(tag(999, 4));
            }
            m
        }),
        framed("an unknown wire type", tag(1, 7)),
        Case {
            name: "a frame shorter than its length prefix",
            body: {
                let mut b = BytesMut::from(&frame(0, &[0u8; 100])[..]);
                b.truncate(15);
                b.freeze()
            },
        },
        Case {
            name: "an invalid compression flag",
            body: frame(2, &[]),
        },
        Case {
            name: "a compressed flag without grpc-encoding",
            body: frame(1, &[]),
        },
        Case {
            name: "no message at all",
            body: Bytes::new(),
        },
    ];
    // invalid UTF-8 in the first string field of the request, and a wrong wire type for it
    if let Some(field) = input
        .field
        .iter()
        .find(|f| f.r#type() == Type::String)
        .map(|f| u32::try_from(f.number()).expect("field number"))
    {
        let mut utf8 = tag(field, 2);
        utf8.extend([3, 0xc3, 0x28, 0xff]);
        cases.push(framed("invalid UTF-8 in a string field", utf8));
        let mut wire = tag(field, 5);
        wire.extend([1, 2, 3, 4]);
        cases.push(framed("a fixed32 where a string belongs", wire));
    }
    cases
}

/// A token the policy of `rule` admits (so that the call reaches the decoder).
fn admitted(app: &Harness, rule: &Rule, service: &str) -> String {
    let service_only = rule.grants.iter().all(|g| g.roles.contains(&Role::Service));
    if service_only {
        return app.keys.service_token("zvv-test-service", service);
    }
    let caller = matrix::caller(
        rule,
        Column::OwnMunicipality,
        "gemeente-test",
        "GM0363",
        "GM0034",
    );
    assert_ne!(caller.org_type, OrgType::Suite);
    app.keys.token_in(
        &caller.org,
        caller.org_type,
        &[caller.role],
        &caller.municipalities,
    )
}

/// (url, service name for SERVICE tokens, audit schema, policies) of every service.
fn services(app: &Harness) -> Vec<(String, &'static str, &'static [Policy])> {
    vec![
        (
            app.intake_url.clone(),
            zvv_intake::SCHEMA.name(),
            zvv_intake::policy::POLICIES,
        ),
        (
            app.signalling_url.clone(),
            zvv_signalling::SCHEMA.name(),
            zvv_signalling::policy::POLICIES,
        ),
        (
            app.notifications_url.clone(),
            zvv_notifications::SCHEMA.name(),
            zvv_notifications::policy::POLICIES,
        ),
        (
            app.reintegration_url.clone(),
            zvv_reintegration::SCHEMA.name(),
            zvv_reintegration::policy::POLICIES,
        ),
    ]
}

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments_on_every_rpc() {
    let app = Harness::start().await.expect("suite");
    let descriptors =
        FileDescriptorSet::decode(zvv_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let message = |full: &str| -> DescriptorProto {
        let full = full.trim_start_matches('.');
        for file in &descriptors.file {
            for m in &file.message_type {
                if format!("{}.{}", file.package(), m.name()) == full {
                    return m.clone();
                }
            }
        }
        panic!("{full} is not in the descriptor set");
    };

    let mut rpcs = 0;
    let mut calls = 0;
    let mut failures = Vec::new();
    let mut served = Vec::new();
    for (url, service, policies) in services(&app) {
        let channel = tonic::transport::Channel::from_shared(url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        for policy in policies {
            served.push(policy.service);
            let (package, name) = policy.service.rsplit_once('.').expect("full name");
            let svc = descriptors
                .file
                .iter()
                .filter(|f| f.package() == package)
                .flat_map(|f| f.service.iter())
                .find(|s| s.name() == name)
                .expect("the policy's service is in the descriptor set");
            for method in &svc.method {
                let rule = policy
                    .rule(method.name())
                    .expect("every RPC has a policy entry");
                let token = admitted(&app, rule, service);
                let path = format!("/{}/{}", policy.service, method.name());
                rpcs += 1;
                for case in cases(&message(method.input_type())) {
                    calls += 1;
                    let request = http::Request::builder()
                        .method("POST")
                        .uri(format!("{url}{path}"))
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .header("authorization", format!("Bearer {token}"));
                    let request = request
                        .body(tonic::body::Body::new(
                            Full::new(case.body.clone()).map_err(|never| match never {}),
                        ))
                        .expect("request");
                    let response = channel.clone().oneshot(request).await.expect("transport");
                    let (parts, body) = response.into_parts();
                    let trailers = body
                        .collect()
                        .await
                        .ok()
                        .and_then(|b| b.trailers().cloned());
                    let status = tonic::Status::from_header_map(&parts.headers)
                        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
                    let Some(status) = status else {
                        failures.push(format!("{path} {}: no grpc-status", case.name));
                        continue;
                    };
                    let short = status.message().len() < 300;
                    let decoded_msg = status
                        .message()
                        .starts_with("the request could not be decoded");
                    if status.code() != Code::InvalidArgument || !short || !decoded_msg {
                        failures.push(format!(
                            "{path} {}: {:?} {:?}",
                            case.name,
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // every zvv service in the descriptor set was covered
    for file in &descriptors.file {
        if !file.package().starts_with("zvv.") {
            continue;
        }
        for svc in &file.service {
            let full = format!("{}.{}", file.package(), svc.name());
            assert!(served.contains(&full.as_str()), "{full} was not tried");
        }
    }
    assert!(rpcs >= 20, "{rpcs} RPCs");

    // audited as invalid: one record per case, on the service that refused it
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut audited = 0i64;
        for schema in ["intake", "signalling", "notifications", "reintegration"] {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {schema}.audit_log WHERE result = 'INVALID_ARGUMENT'"
            )))
            .fetch_one(&app.pool)
            .await
            .expect("count audit records");
            audited += n;
        }
        if audited == calls {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{audited} of {calls} undecodable calls audited as INVALID_ARGUMENT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
