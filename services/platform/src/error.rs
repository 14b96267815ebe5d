//! One table from error kinds to gRPC status codes.
//!
//! Services turn their own `thiserror` enums into [`ApiError`]; [`ApiError::into_status`] is the
//! only place that picks a `tonic::Code`. Validation failures carry `google.rpc.BadRequest` field
//! violations; internal causes are logged with the trace id and never sent to the caller.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `domain` of `google.rpc.ErrorInfo` details the suite returns.
pub const ERROR_DOMAIN: &str = "zvv";

/// What went wrong, as far as a caller may know.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid: (field path, description).
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<(String, String)>),
    #[error("{0}")]
    NotFound(String),
    /// Exists, but outside the caller's jurisdiction: answered exactly as [`ApiError::NotFound`]
    /// with this message, audited as [`crate::audit::NOT_FOUND_OUTSIDE_JURISDICTION`].
    #[error("{0}")]
    OutsideJurisdiction(String),
    /// Not found, with an `ErrorInfo` detail (e.g. the lookup reference of an unknown BSN).
    #[error("{message}")]
    NotFoundWithInfo {
        message: String,
        reason: &'static str,
        metadata: HashMap<String, String>,
    },
    /// The entity exists already; `metadata` goes into an `ErrorInfo` detail.
    #[error("{message}")]
    AlreadyExists {
        message: String,
        reason: &'static str,
        metadata: HashMap<String, String>,
    },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    /// Anything the caller cannot act on: a database failure, a bug. Logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn describe(violations: &[(String, String)]) -> String {
    violations
        .iter()
        .map(|(field, why)| format!("{field} {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// One field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![(field.into(), description.into())])
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    /// The field violations of an INVALID_ARGUMENT error (empty for other kinds).
    pub fn violations(&self) -> &[(String, String)] {
        match self {
            Self::InvalidArgument(v) => v,
            _ => &[],
        }
    }

    /// The canonical name of the gRPC code, as stored in audit records.
    pub fn code_name(&self) -> &'static str {
        crate::layer::code_name(self.code())
    }

    /// The result an audit record of a call that failed this way holds: the code's name, with
    /// what only auditors may see (an id outside the caller's jurisdiction).
    pub fn audit_result(&self) -> &'static str {
        match self {
            Self::OutsideJurisdiction(_) => crate::audit::NOT_FOUND_OUTSIDE_JURISDICTION,
            other => other.code_name(),
        }
    }

    /// The gRPC code of this kind of error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) | Self::OutsideJurisdiction(_) | Self::NotFoundWithInfo { .. } => {
                Code::NotFound
            }
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Converts into the status sent to the caller; internal causes are logged here.
    pub fn into_status(self) -> Status {
        let code = self.code();
        match self {
            Self::InvalidArgument(violations) => {
                let message = format!("invalid argument: {}", describe(&violations));
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|(field, description)| FieldViolation::new(field, description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(code, message, details)
            }
            Self::AlreadyExists {
                message,
                reason,
                metadata,
            }
            | Self::NotFoundWithInfo {
                message,
                reason,
                metadata,
            } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
            ),
            Self::Internal(cause) => {
                let trace_id = crate::telemetry::current_trace_id();
                tracing::error!(
                    error.cause_chain = %cause_chain(&*cause),
                    trace_id = %trace_id,
                    "internal error"
                );
                Status::new(code, format!("internal error (trace id {trace_id})"))
            }
            Self::NotFound(m)
            | Self::OutsideJurisdiction(m)
            | Self::FailedPrecondition(m)
            | Self::PermissionDenied(m)
            | Self::Unauthenticated(m)
            | Self::ResourceExhausted(m)
            | Self::Unavailable(m) => Status::new(code, m),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        err.into_status()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut => {
                Self::Unavailable("the database is busy, retry later".to_owned())
            }
            _ => Self::Internal(Box::new(err)),
        }
    }
}

/// Collects every field violation of a request, so that a caller learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    pub fn add(&mut self, field: &str, why: impl Into<String>) {
        self.0.push((field.to_owned(), why.into()));
    }

    /// Keeps the value, or records the violation under `field`.
    pub fn check<T>(&mut self, field: &str, r: Result<T, impl Into<String>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    /// Keeps the value, or records the violations of an INVALID_ARGUMENT error (other errors are
    /// recorded under `field`).
    pub fn take<T>(&mut self, field: &str, r: Result<T, ApiError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(ApiError::InvalidArgument(list)) => {
                self.0.extend(list);
                None
            }
            Err(other) => {
                self.add(field, other.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

/// The `key` entry of the `google.rpc.ErrorInfo` detail of a status another suite service sent.
pub fn error_info_entry(status: &Status, key: &str) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

/// True when a database error is a unique violation (SQLSTATE 23505).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23505")
}

/// "outer: inner: innermost", for logs.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_code() {
        let table = [
            (ApiError::invalid("bsn", "bad"), Code::InvalidArgument),
            (ApiError::NotFound("x".into()), Code::NotFound),
            (ApiError::OutsideJurisdiction("x".into()), Code::NotFound),
            (
                ApiError::NotFoundWithInfo {
                    message: "x".into(),
                    reason: "X",
                    metadata: HashMap::new(),
                },
                Code::NotFound,
            ),
            (
                ApiError::AlreadyExists {
                    message: "x".into(),
                    reason: "X",
                    metadata: HashMap::new(),
                },
                Code::AlreadyExists,
            ),
            (
                ApiError::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (
                ApiError::PermissionDenied("x".into()),
                Code::PermissionDenied,
            ),
            (ApiError::Unauthenticated("x".into()), Code::Unauthenticated),
            (
                ApiError::ResourceExhausted("x".into()),
                Code::ResourceExhausted,
            ),
            (ApiError::Unavailable("x".into()), Code::Unavailable),
            (ApiError::internal("boom"), Code::Internal),
        ];
        for (err, code) in table {
            assert_eq!(err.into_status().code(), code);
        }
    }

    #[test]
    fn an_id_outside_the_jurisdiction_answers_as_an_unknown_one() {
        let hidden = ApiError::OutsideJurisdiction("subject x not found".into());
        let unknown = ApiError::NotFound("subject x not found".into());
        assert_eq!(hidden.audit_result(), "NOT_FOUND:OUTSIDE_JURISDICTION");
        assert_eq!(unknown.audit_result(), "NOT_FOUND");
        let (a, b) = (hidden.into_status(), unknown.into_status());
        assert_eq!((a.code(), a.message()), (b.code(), b.message()));
        assert_eq!(a.details(), b.details());
    }

    #[test]
    fn validation_errors_name_the_field() {
        let status = ApiError::invalid("birth_date", "must not be in the future").into_status();
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "birth_date");
        assert!(status.message().contains("birth_date"));
    }

    #[test]
    fn internal_details_are_not_returned() {
        let status = ApiError::internal("relation \"intake.secret\" does not exist").into_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn already_exists_carries_error_info() {
        let status = ApiError::AlreadyExists {
            message: "already registered".into(),
            reason: "SUBJECT_EXISTS",
            metadata: HashMap::from([("subject_id".to_owned(), "abc".to_owned())]),
        }
        .into_status();
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.metadata["subject_id"], "abc");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(
            error_info_entry(&status, "subject_id").as_deref(),
            Some("abc")
        );
        assert_eq!(error_info_entry(&status, "other"), None);
    }
}
