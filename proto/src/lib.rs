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

/// `Debug` for messages that carry a BSN: the number never reaches a log line through `{:?}`.
mod redacted {
    use std::fmt;

    use crate::intake::v1::{
        GetSubjectContextRequest, RegisterSubjectRequest, ResolveSubjectRequest,
        get_subject_context_request,
    };
    use crate::reintegration::v1::{RecordDetentionEventRequest, record_detention_event_request};
    use crate::signalling::v1::{
        RegisterSignalRequest, SubmitReferralRequest, register_signal_request,
        submit_referral_request,
    };

    const HIDDEN: &str = "<redacted>";

    /// A subject given by BSN shows only that it was a BSN.
    fn subject_ref(bsn: bool, subject_id: Option<&str>) -> String {
        match (bsn, subject_id) {
            (true, _) => format!("bsn: {HIDDEN}"),
            (false, Some(id)) => format!("subject_id: {id}"),
            (false, None) => "none".to_owned(),
        }
    }

    impl fmt::Debug for RegisterSignalRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let subject = match &self.subject {
                Some(register_signal_request::Subject::Bsn(_)) => subject_ref(true, None),
                Some(register_signal_request::Subject::SubjectId(id)) => {
                    subject_ref(false, Some(id))
                }
                None => subject_ref(false, None),
            };
            f.debug_struct("RegisterSignalRequest")
                .field("request_id", &self.request_id)
                .field("subject", &subject)
                .field("contact", &self.contact.as_ref().map(|_| HIDDEN))
                .field("duration_months", &self.duration_months)
                .finish()
        }
    }

    impl fmt::Debug for SubmitReferralRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let subject = match &self.subject {
                Some(submit_referral_request::Subject::Bsn(_)) => subject_ref(true, None),
                Some(submit_referral_request::Subject::SubjectId(id)) => {
                    subject_ref(false, Some(id))
                }
                None => subject_ref(false, None),
            };
            f.debug_struct("SubmitReferralRequest")
                .field("request_id", &self.request_id)
                .field("subject", &subject)
                .field("source_instrument", &self.source_instrument)
                .field("instrument_version", &self.instrument_version)
                .field("level", &self.level)
                .field("observed_on", &self.observed_on)
                .field("municipality_code", &self.municipality_code)
                .field("birth_date", &HIDDEN)
                .finish()
        }
    }

    impl fmt::Debug for RecordDetentionEventRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let subject = match &self.subject {
                Some(record_detention_event_request::Subject::Bsn(_)) => subject_ref(true, None),
                Some(record_detention_event_request::Subject::SubjectId(id)) => {
                    subject_ref(false, Some(id))
                }
                None => subject_ref(false, None),
            };
            f.debug_struct("RecordDetentionEventRequest")
                .field("request_id", &self.request_id)
                .field("external_ref", &self.external_ref)
                .field("subject", &subject)
                .field("birth_date", &HIDDEN)
                .field("kind", &self.kind)
                .field("institution_code", &self.institution_code)
                .field("institution_type", &self.institution_type)
                .field("occurred_on", &self.occurred_on)
                .field("expected_release_on", &self.expected_release_on)
                .field("municipality_code", &self.municipality_code)
                .finish()
        }
    }

    impl fmt::Debug for RegisterSubjectRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RegisterSubjectRequest")
                .field("request_id", &self.request_id)
                .field("bsn", &HIDDEN)
                .field("given_name", &HIDDEN)
                .field("family_name", &HIDDEN)
                .field("birth_date", &HIDDEN)
                .field("municipality_code", &self.municipality_code)
                .field("neighbourhood_code", &self.neighbourhood_code)
                .finish()
        }
    }

    impl fmt::Debug for ResolveSubjectRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResolveSubjectRequest")
                .field("bsn", &HIDDEN)
                .field("create_if_missing", &self.create_if_missing)
                .field("municipality_code", &self.municipality_code)
                .field("birth_date", &HIDDEN)
                .finish()
        }
    }

    impl fmt::Debug for GetSubjectContextRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let subject = match &self.subject {
                Some(get_subject_context_request::Subject::Bsn(_)) => subject_ref(true, None),
                Some(get_subject_context_request::Subject::SubjectId(id)) => {
                    subject_ref(false, Some(id))
                }
                None => subject_ref(false, None),
            };
            f.debug_struct("GetSubjectContextRequest")
                .field("subject", &subject)
                .field("create_if_missing", &self.create_if_missing)
                .field("municipality_code", &self.municipality_code)
                .field("birth_date", &HIDDEN)
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn debug_output_hides_the_bsn() {
            let r = RegisterSubjectRequest {
                bsn: "123456782".into(),
                given_name: "Noor".into(),
                ..Default::default()
            };
            let text = format!("{r:?}");
            assert!(
                !text.contains("123456782") && !text.contains("Noor"),
                "{text}"
            );
            let r = ResolveSubjectRequest {
                bsn: "123456782".into(),
                create_if_missing: true,
                municipality_code: "GM0363".into(),
                birth_date: "2016-05-04".into(),
            };
            let text = format!("{r:?}");
            assert!(
                !text.contains("123456782") && !text.contains("2016-05-04"),
                "{text}"
            );
            let r = RegisterSignalRequest {
                subject: Some(register_signal_request::Subject::Bsn("123456782".into())),
                ..Default::default()
            };
            assert!(!format!("{r:?}").contains("123456782"));
            let r = SubmitReferralRequest {
                subject: Some(submit_referral_request::Subject::Bsn("123456782".into())),
                ..Default::default()
            };
            assert!(!format!("{r:?}").contains("123456782"));
            let r = RecordDetentionEventRequest {
                subject: Some(record_detention_event_request::Subject::Bsn(
                    "123456782".into(),
                )),
                birth_date: "1990-05-04".into(),
                ..Default::default()
            };
            let text = format!("{r:?}");
            assert!(
                !text.contains("123456782") && !text.contains("1990-05-04"),
                "{text}"
            );
            let r = GetSubjectContextRequest {
                subject: Some(get_subject_context_request::Subject::Bsn(
                    "123456782".into(),
                )),
                birth_date: "2016-05-04".into(),
                ..Default::default()
            };
            let text = format!("{r:?}");
            assert!(
                !text.contains("123456782") && !text.contains("2016-05-04"),
                "{text}"
            );
        }
    }
}

pub mod signalling {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("zvv.signalling.v1");
    }
}

pub mod reintegration {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("zvv.reintegration.v1");
    }
}

pub mod events {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("zvv.events.v1");
    }
}

pub mod notifications {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("zvv.notifications.v1");
    }
}

/// `Debug` for messages that carry a secret: it never reaches a log line through `{:?}`.
mod secret {
    use std::fmt;

    use crate::notifications::v1::{CreateSubscriptionResponse, WebhookDelivery};

    const HIDDEN: &str = "<secret>";

    impl fmt::Debug for WebhookDelivery {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WebhookDelivery")
                .field("url", &self.url)
                .field(
                    "authorization",
                    &if self.authorization.is_empty() {
                        ""
                    } else {
                        HIDDEN
                    },
                )
                .finish()
        }
    }

    impl fmt::Debug for CreateSubscriptionResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CreateSubscriptionResponse")
                .field("subscription", &self.subscription)
                .field(
                    "signing_secret",
                    &if self.signing_secret.is_empty() {
                        ""
                    } else {
                        HIDDEN
                    },
                )
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn debug_output_hides_secrets() {
            let w = WebhookDelivery {
                url: "https://example.org/hook".into(),
                authorization: "Bearer s3cr3t".into(),
            };
            let text = format!("{w:?}");
            assert!(
                text.contains("example.org") && !text.contains("s3cr3t"),
                "{text}"
            );
            let r = CreateSubscriptionResponse {
                subscription: None,
                signing_secret: "whsec_c2VjcmV0".into(),
            };
            assert!(!format!("{r:?}").contains("c2VjcmV0"));
        }
    }
}
