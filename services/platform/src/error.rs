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
                let violations = bounded(violations);
                // the details hold every listed violation whole; the message may be cut
                let message = cut_owned(
                    format!("invalid argument: {}", describe(&violations)),
                    2 * MAX_MESSAGE_CHARS,
                );
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
                cut_owned(message, MAX_MESSAGE_CHARS),
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
            // retryable: with a hint when to try again
            Self::Unavailable(m) => Status::with_error_details(
                code,
                cut_owned(m, MAX_MESSAGE_CHARS),
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
            ),
            Self::NotFound(m)
            | Self::OutsideJurisdiction(m)
            | Self::FailedPrecondition(m)
            | Self::PermissionDenied(m)
            | Self::Unauthenticated(m)
            | Self::ResourceExhausted(m) => Status::new(code, cut_owned(m, MAX_MESSAGE_CHARS)),
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
        match database_fault(&err) {
            Some(fault) => {
                tracing::warn!(error = %cause_chain(&err), fault = ?fault, "database unavailable");
                Self::Unavailable(fault.message().to_owned())
            }
            None => Self::Internal(Box::new(err)),
        }
    }
}

/// Why the database could not serve a call: faults the caller cannot fix and may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseFault {
    /// No pooled connection was free, and none could be opened, within the acquire timeout:
    /// the pool is exhausted or the database is away.
    PoolExhausted,
    /// The connection broke, or none could be made.
    ConnectionLost,
    /// The server is shutting down, starting up or in recovery.
    ServerUnavailable,
}

impl DatabaseFault {
    pub fn message(self) -> &'static str {
        match self {
            Self::PoolExhausted => {
                "no database connection could be had in time (the database is busy or cannot be \
                 reached); retry later with the same request_id"
            }
            Self::ConnectionLost | Self::ServerUnavailable => {
                "the database cannot be reached right now; retry later with the same request_id"
            }
        }
    }
}

/// The fault behind a database error that is the database's, not the call's: connection loss,
/// pool exhaustion, an administrator's shutdown, "cannot connect now", too many connections.
pub fn database_fault(err: &sqlx::Error) -> Option<DatabaseFault> {
    match err {
        sqlx::Error::PoolTimedOut => Some(DatabaseFault::PoolExhausted),
        sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Some(DatabaseFault::ConnectionLost),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // connection exceptions (class 08), admin / crash shutdown, cannot connect now,
            // too many connections
            Some(code) if code.starts_with("08") => Some(DatabaseFault::ConnectionLost),
            Some("57P01" | "57P02" | "57P03" | "53300") => Some(DatabaseFault::ServerUnavailable),
            _ => None,
        },
        _ => None,
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

/// The value of a checked request once its violations are empty: the violations as
/// INVALID_ARGUMENT, else the value (an internal error if a check passed without one).
pub fn checked<T>(v: Violations, value: Option<T>) -> Result<T, ApiError> {
    v.into_result()?;
    value.ok_or_else(|| ApiError::internal("validation passed with a missing field"))
}

/// At most this many field violations go into one status; a note counts the rest.
pub const MAX_VIOLATIONS: usize = 10;
/// Field paths in a status are cut to this many characters.
pub const MAX_FIELD_CHARS: usize = 80;
/// Violation descriptions in a status are cut to this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Any other message is cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 512;
/// A value a message quotes is cut to this many characters.
pub const MAX_QUOTED_CHARS: usize = 40;

/// `value` for an error message: debug-quoted, cut to a short prefix, so that an error never
/// echoes unbounded input.
pub fn quote(value: &str) -> String {
    let prefix = cut(value, MAX_QUOTED_CHARS);
    if prefix.len() < value.len() {
        format!("{prefix:?}… ({} characters)", value.chars().count())
    } else {
        format!("{prefix:?}")
    }
}

/// The first `max` characters of `text`.
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// `text` cut to `max` characters, the last one an ellipsis when it was longer.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", cut(text, max.saturating_sub(1)))
    }
}

fn cut_owned(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        truncate(&text, max)
    }
}

/// The violations that go into a status: each (field, description) once, cut to length, at
/// most [`MAX_VIOLATIONS`] and a note how many more there were.
fn bounded(violations: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut more = 0usize;
    for (field, description) in violations {
        let entry = (
            cut_owned(field, MAX_FIELD_CHARS),
            cut_owned(description, MAX_DESCRIPTION_CHARS),
        );
        if !seen.insert(entry.clone()) {
            continue;
        }
        if out.len() == MAX_VIOLATIONS {
            more += 1;
        } else {
            out.push(entry);
        }
    }
    if more > 0 {
        out.push((
            "request".to_owned(),
            format!("has {more} more problems, not listed"),
        ));
    }
    out
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

    /// The bytes a status puts on the wire besides its message: the encoded details.
    fn status_size(status: &Status) -> usize {
        status.message().len() + status.details().len()
    }

    #[test]
    fn errors_do_not_echo_unbounded_input() {
        let long = "x".repeat(100_000);
        let quoted = quote(&long);
        assert!(quoted.chars().count() < 80, "{quoted}");
        assert!(quoted.contains("100000 characters"), "{quoted}");
        assert_eq!(quote("given_name"), "\"given_name\"");
        // cut on a character boundary
        assert!(quote(&"é".repeat(50)).starts_with(&format!("{:?}", "é".repeat(40))[..5]));

        // one long description, one long field
        let status = ApiError::invalid(long.clone(), long.clone()).into_status();
        assert!(status_size(&status) < 1_000, "{}", status_size(&status));
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(
            violations[0].description.chars().count(),
            MAX_DESCRIPTION_CHARS
        );

        // 10,000 repeats of one problem are reported once
        let repeated = vec![
            (
                "update_mask".to_owned(),
                "names given_name twice".to_owned()
            );
            10_000
        ];
        let status = ApiError::InvalidArgument(repeated).into_status();
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations.len(), 1);
        assert_eq!(
            status.message(),
            "invalid argument: update_mask names given_name twice"
        );

        // 10,000 different long problems: capped, counted, well under 16 KiB
        let many: Vec<_> = (0..10_000)
            .map(|i| {
                (
                    format!("update_mask.paths[{i}]{long}"),
                    format!("{i} {long}"),
                )
            })
            .collect();
        let status = ApiError::InvalidArgument(many).into_status();
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations.len(), MAX_VIOLATIONS + 1);
        assert_eq!(
            violations[MAX_VIOLATIONS].description,
            "has 9990 more problems, not listed"
        );
        assert!(status_size(&status) < 8 * 1024, "{}", status_size(&status));

        // free-text messages are cut too
        let status = ApiError::NotFound(long.clone()).into_status();
        assert_eq!(status.message().chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn database_faults_are_unavailable_with_a_retry_hint() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(database_fault(&err).is_some(), "{err}");
            let status = ApiError::from(err).into_status();
            assert_eq!(status.code(), Code::Unavailable);
            assert!(
                status.message().contains("request_id"),
                "{}",
                status.message()
            );
            assert!(status.get_error_details().retry_info().is_some());
        }
        assert!(database_fault(&sqlx::Error::RowNotFound).is_none());
        assert_eq!(
            ApiError::from(sqlx::Error::RowNotFound)
                .into_status()
                .code(),
            Code::Internal
        );
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
