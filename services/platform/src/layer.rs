//! The call layer in front of every suite RPC: continues the caller's trace, authenticates the
//! bearer token, takes the end user a suite service calls on behalf of, checks the service's
//! policy table (deny by default), audits refusals, and hands the handler a [`CallContext`] in the
//! request extensions. Health and reflection pass through.
//!
//! Calls that fail authentication are audited within a per-peer budget ([`crate::budget`]); past
//! it they are answered RESOURCE_EXHAUSTED without a database write, logged and counted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tonic::{Code, Status, transport::server::TcpConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    audit::{self, CallContext},
    auth::{AuthError, END_USER_METADATA, Principal, TokenVerifier},
    budget::{PeerBudget, Take},
    clock::SharedClock,
    db::Schema,
    policy::{Decision, PolicySet},
    server::ServerSettings,
    telemetry,
};

struct Shared {
    verifier: Arc<TokenVerifier>,
    policies: PolicySet,
    pool: PgPool,
    schema: Schema,
    clock: SharedClock,
    request_timeout: Duration,
    refusals: PeerBudget,
    /// Whether the database answered the last readiness check (see [`crate::server`]).
    database_reachable: Arc<AtomicBool>,
    /// Audit writes still running after their call was answered, at most [`MAX_PENDING_AUDITS`].
    pending_audits: Arc<Semaphore>,
}

/// Audit writes that may go on after their call was answered; past this a call whose record
/// cannot be written within its deadline is counted unaudited at once.
pub const MAX_PENDING_AUDITS: usize = 64;

#[derive(Clone)]
pub struct CallLayer {
    shared: Arc<Shared>,
}

impl CallLayer {
    /// `pool` and `schema` are where refused and timed-out calls are audited. A call still
    /// running after the settings' request timeout is abandoned (its transaction rolls back),
    /// audited as DEADLINE_EXCEEDED and answered so.
    pub fn new(
        verifier: Arc<TokenVerifier>,
        policies: PolicySet,
        pool: PgPool,
        schema: Schema,
        clock: SharedClock,
        settings: &ServerSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                policies,
                pool,
                schema,
                clock,
                request_timeout: settings.request_timeout,
                refusals: PeerBudget::new(settings.auth_failure_budget),
                database_reachable: Arc::new(AtomicBool::new(true)),
                pending_audits: Arc::new(Semaphore::new(MAX_PENDING_AUDITS)),
            }),
        }
    }
}

impl CallLayer {
    /// Where this layer audits: the pool and schema the sealer works on.
    pub fn audit_target(&self) -> (PgPool, Schema) {
        (self.shared.pool.clone(), self.shared.schema)
    }

    /// The flag readiness keeps: while it is false the layer does not wait for audit writes
    /// beyond [`AUDIT_GRACE`].
    pub fn database_reachable(&self) -> Arc<AtomicBool> {
        self.shared.database_reachable.clone()
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;
    fn layer(&self, inner: S) -> CallService<S> {
        CallService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The end user a suite service names in [`END_USER_METADATA`]: `Ok(None)` when there is none,
/// an error status when a caller that is not a suite service sends one or it is malformed.
fn end_user(headers: &http::HeaderMap, caller: &Principal) -> Result<Option<Principal>, Status> {
    let Some(value) = headers.get(END_USER_METADATA) else {
        return Ok(None);
    };
    if !caller.is_suite_service() {
        return Err(Status::permission_denied(format!(
            "{END_USER_METADATA} metadata is accepted only from suite services"
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| Status::unauthenticated(AuthError::EndUser.to_string()))?;
    Principal::from_end_user_metadata(text)
        .map(Some)
        .map_err(|e| Status::unauthenticated(e.to_string()))
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    Ok(token.trim())
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CallService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path().to_owned();
        // take the instance that was polled ready, leave a fresh clone behind
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if path.starts_with("/grpc.") {
            return Box::pin(inner.call(req));
        }
        let shared = self.shared.clone();

        let parent = telemetry::extract(req.headers());
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %path,
            grpc.status = tracing::field::Empty,
        );
        let remote_trace = telemetry::remote_trace_id(&parent);
        let _ = span.set_parent(parent);
        let mut trace_id = telemetry::trace_id_of(&span);
        if trace_id.is_empty() {
            trace_id = remote_trace;
        }

        Box::pin(
            async move {
                // the answer comes by then, audit write included; the handler has until
                // AUDIT_GRACE before it, so that a timed-out call can still be audited in time
                let deadline = tokio::time::Instant::now() + shared.request_timeout;
                let handler_deadline = deadline - AUDIT_GRACE.min(shared.request_timeout / 4);
                let peer_addr = req
                    .extensions()
                    .get::<TcpConnectInfo>()
                    .and_then(|i| i.remote_addr());
                let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
                let mut ctx = CallContext::new(path.trim_start_matches('/').to_owned(), peer, trace_id);
                let principal = match bearer(req.headers()).and_then(|t| shared.verifier.verify(t)) {
                    Ok(p) => p,
                    Err(err) => {
                        let status = Status::unauthenticated(err.to_string());
                        return Ok(refuse_unauthenticated(&shared, &ctx, peer_addr, &err, status, deadline).await);
                    }
                };
                ctx.principal = Some(principal.clone());
                match end_user(req.headers(), &principal) {
                    Ok(user) => ctx.end_user = user,
                    Err(status) => {
                        tracing::info!(org = %principal.org, reason = status.message(), "call refused: end-user metadata");
                        return Ok(refuse(&shared, &ctx, status, deadline).await);
                    }
                }
                match shared.policies.decide(&path, &principal) {
                    Decision::Allowed(rule) => {
                        ctx.legal_basis = rule.legal_basis.to_owned();
                        req.extensions_mut().insert(ctx.clone());
                        // a call dropped before it ends (the client cancelled, or its own
                        // deadline passed) is audited by this guard
                        let guard = DropGuard {
                            shared: shared.clone(),
                            ctx: Some(ctx.clone()),
                        };
                        let outcome = tokio::time::timeout_at(handler_deadline, inner.call(req)).await;
                        guard.disarm();
                        match outcome {
                            Ok(Ok(response)) => {
                                if ctx.is_audited() {
                                    return Ok(response);
                                }
                                // a failed call, or a request that never reached the service
                                let status = Status::from_header_map(response.headers());
                                if let Some(answer) = status.as_ref().and_then(undecodable) {
                                    tracing::info!(reason = %status.as_ref().map(|s| s.message()).unwrap_or_default(),
                                        "call refused: the request could not be decoded");
                                    record(&shared, &ctx, answer.code(), deadline).await;
                                    return Ok(answer.into_http());
                                }
                                let code = status.map_or(Code::Ok, |s| s.code());
                                if code == Code::Ok {
                                    tracing::warn!("the service answered without auditing the call");
                                }
                                record(&shared, &ctx, code, deadline).await;
                                Ok(response)
                            }
                            Ok(Err(e)) => {
                                if !ctx.is_audited() {
                                    record(&shared, &ctx, Code::Internal, deadline).await;
                                }
                                Err(e)
                            }
                            Err(_) => {
                                tracing::warn!(timeout = ?shared.request_timeout, "call abandoned: request timeout");
                                let status = Status::deadline_exceeded(
                                    "the call did not finish within the server's request timeout; \
                                     it may or may not have taken effect: retry with the same request_id",
                                );
                                if !ctx.is_audited() {
                                    record(&shared, &ctx, status.code(), deadline).await;
                                }
                                Ok(status.into_http())
                            }
                        }
                    }
                    Decision::Denied(rule) => {
                        ctx.legal_basis = rule.legal_basis.to_owned();
                        tracing::info!(org = %principal.org, org_type = %principal.org_type, roles = %principal.roles_text(), "call refused: not allowed");
                        let msg = format!(
                            "{} ({}) with roles [{}] may not call this RPC",
                            principal.org_type,
                            principal.org,
                            principal.roles_text()
                        );
                        Ok(refuse(&shared, &ctx, Status::permission_denied(msg), deadline).await)
                    }
                    Decision::Unknown => {
                        tracing::warn!("call refused: no policy entry for this RPC");
                        Ok(refuse(&shared, &ctx, Status::permission_denied("no policy allows this RPC"), deadline).await)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Refuses a call that failed authentication: audited while the peer's budget lasts, otherwise
/// answered RESOURCE_EXHAUSTED (with a retry hint) without a database write, logged and counted.
async fn refuse_unauthenticated<B: Default>(
    shared: &Arc<Shared>,
    ctx: &CallContext,
    peer: Option<std::net::SocketAddr>,
    err: &AuthError,
    status: Status,
    deadline: tokio::time::Instant,
) -> http::Response<B> {
    let ip = peer.map(|a| a.ip());
    match shared.refusals.take(ip, std::time::Instant::now()) {
        Take::Allowed => {
            tracing::info!(reason = %err, "call refused: not authenticated");
            refuse(shared, ctx, status, deadline).await
        }
        Take::Shed { first } => {
            let total = crate::budget::shed_total();
            if first {
                tracing::warn!(peer = ?ip, reason = %err, shed_total = total,
                    "unauthenticated calls from this peer are over budget: refused without audit");
            } else {
                tracing::debug!(peer = ?ip, reason = %err, shed_total = total,
                    "call refused without audit: unauthenticated, over budget");
            }
            tracing::Span::current().record("grpc.status", code_name(Code::ResourceExhausted));
            use tonic_types::{ErrorDetails, StatusExt};
            let retry = shared.refusals.retry_after();
            Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "too many calls without a valid token from this address; retry in {} s with a valid token",
                    retry.as_secs().max(1)
                ),
                ErrorDetails::with_retry_info(Some(retry)),
            )
            .into_http()
        }
    }
}

/// Audits a refused call in its own transaction and builds the response. An audit failure is
/// logged; the call stays refused.
async fn refuse<B: Default>(
    shared: &Arc<Shared>,
    ctx: &CallContext,
    status: Status,
    deadline: tokio::time::Instant,
) -> http::Response<B> {
    record(shared, ctx, status.code(), deadline).await;
    status.into_http()
}

/// The caller's answer when the transport or codec could not decode its request (tonic answers
/// those INTERNAL): INVALID_ARGUMENT with a short reason. `None` for any other status.
fn undecodable(status: &Status) -> Option<Status> {
    if status.code() != Code::Internal {
        return None;
    }
    let message = status.message();
    let reason = if let Some(rest) = message.strip_prefix("failed to decode Protobuf message: ") {
        // prost names the message and field path (the suite's own names) and what was wrong
        rest
    } else if message == "Missing request message." {
        "the request has no message"
    } else if message == "Unexpected EOF decoding stream." {
        "the request message is truncated"
    } else if message.starts_with("protocol error: received message with")
        || message.starts_with("Error decompressing")
    {
        "the request frame is malformed (compression flag or compressed data)"
    } else {
        return None;
    };
    Some(Status::invalid_argument(format!(
        "the request could not be decoded: {}",
        crate::error::truncate(reason, crate::error::MAX_DESCRIPTION_CHARS)
    )))
}

/// The answer of a call waits for the layer's audit write of it until the call's deadline (its
/// start plus the request timeout), but no more than this while the database is known to be
/// unreachable or the call failed for a database fault. Past that the write goes on in the
/// background, so that the answer comes by the request timeout; a write that fails is logged
/// with the trace id and counted. The handler's own time ends this long before the deadline.
pub const AUDIT_GRACE: Duration = Duration::from_millis(200);

/// Calls the layer could not audit (the write failed or the database was unreachable), in this
/// process since it started.
static UNRECORDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The number of calls this process answered without being able to write their audit record.
pub fn unrecorded_total() -> u64 {
    UNRECORDED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes the record of a call the service did not audit itself: with the ids the logic attached
/// and the audit result of its error (from the error table), else the status code's name. Waits
/// for it until `deadline` (see [`AUDIT_GRACE`]).
async fn record(
    shared: &Arc<Shared>,
    ctx: &CallContext,
    code: Code,
    deadline: tokio::time::Instant,
) {
    tracing::Span::current().record("grpc.status", code_name(code));
    let (ids, result) = ctx.outcome();
    let result = match result {
        Some(r)
            if code != Code::Ok && code != Code::DeadlineExceeded && code != Code::Cancelled =>
        {
            r
        }
        _ => code_name(code),
    };
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let hurry = code == Code::Unavailable || !shared.database_reachable.load(Ordering::Relaxed);
    let wait = if hurry {
        remaining.min(AUDIT_GRACE)
    } else {
        remaining
    };
    let write = {
        let shared = shared.clone();
        let ctx = ctx.clone();
        let at = shared.clock.now();
        async move {
            let written =
                audit::record_alone(&shared.pool, shared.schema, &ctx, ids, result, at).await;
            if let Err(e) = written {
                unrecorded(&ctx, result, &crate::error::cause_chain(&e));
            }
        }
        .instrument(tracing::Span::current())
    };
    let Ok(permit) = shared.pending_audits.clone().try_acquire_owned() else {
        // too many writes are still pending: this one gets its wait and no more
        if tokio::time::timeout(wait, write).await.is_err() {
            unrecorded(
                ctx,
                result,
                "the audit write did not finish in time and too many others were pending",
            );
        }
        return;
    };
    let write = tokio::spawn(async move {
        write.await;
        drop(permit);
    });
    if tokio::time::timeout(wait, write).await.is_err() {
        tracing::warn!(waited = ?wait, "the audit record of this call is still being written: answering without waiting");
    }
}

/// Logs and counts a call whose audit record could not be written.
fn unrecorded(ctx: &CallContext, result: &str, cause: &str) {
    let total = UNRECORDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    telemetry::count_unrecorded_call();
    tracing::error!(
        trace_id = %ctx.trace_id,
        action = %ctx.action,
        result,
        error = %cause,
        unrecorded_total = total,
        "cannot audit a call: it is answered without an audit record"
    );
}

/// Audits a call whose future is dropped before it ends.
struct DropGuard {
    shared: Arc<Shared>,
    ctx: Option<CallContext>,
}

impl DropGuard {
    fn disarm(mut self) {
        self.ctx = None;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        if ctx.is_audited() {
            return;
        }
        let shared = self.shared.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                record(&shared, &ctx, Code::Cancelled, tokio::time::Instant::now()).await
            });
        }
    }
}

/// The canonical name of a gRPC code, as stored in audit records.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
