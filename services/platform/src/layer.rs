//! The call layer in front of every suite RPC: continues the caller's trace, authenticates the
//! bearer token, checks the service's policy table (deny by default), audits refusals, and hands
//! the handler a [`CallContext`] in the request extensions. Health and reflection pass through.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use sqlx::PgPool;
use tonic::{Code, Status, transport::server::TcpConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    audit::{self, CallContext},
    auth::{AuthError, TokenVerifier},
    clock::SharedClock,
    db::Schema,
    policy::{Decision, PolicySet},
    telemetry,
};

struct Shared {
    verifier: Arc<TokenVerifier>,
    policies: PolicySet,
    pool: PgPool,
    schema: Schema,
    clock: SharedClock,
    request_timeout: Duration,
}

#[derive(Clone)]
pub struct CallLayer {
    shared: Arc<Shared>,
}

impl CallLayer {
    /// `pool` and `schema` are where refused and timed-out calls are audited. A call still
    /// running after `request_timeout` is abandoned (its transaction rolls back), audited as
    /// DEADLINE_EXCEEDED and answered so.
    pub fn new(
        verifier: Arc<TokenVerifier>,
        policies: PolicySet,
        pool: PgPool,
        schema: Schema,
        clock: SharedClock,
        request_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                policies,
                pool,
                schema,
                clock,
                request_timeout,
            }),
        }
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
                let peer = req
                    .extensions()
                    .get::<TcpConnectInfo>()
                    .and_then(|i| i.remote_addr())
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let mut ctx = CallContext {
                    action: path.trim_start_matches('/').to_owned(),
                    principal: None,
                    peer,
                    legal_basis: String::new(),
                    trace_id,
                };
                let principal = match bearer(req.headers()).and_then(|t| shared.verifier.verify(t)) {
                    Ok(p) => p,
                    Err(err) => {
                        tracing::info!(reason = %err, "call refused: not authenticated");
                        return Ok(refuse(&shared, &ctx, Status::unauthenticated(err.to_string())).await);
                    }
                };
                ctx.principal = Some(principal.clone());
                match shared.policies.decide(&path, &principal) {
                    Decision::Allowed(rule) => {
                        ctx.legal_basis = rule.legal_basis.to_owned();
                        req.extensions_mut().insert(ctx.clone());
                        match tokio::time::timeout(shared.request_timeout, inner.call(req)).await {
                            Ok(response) => response,
                            Err(_) => {
                                tracing::warn!(timeout = ?shared.request_timeout, "call abandoned: request timeout");
                                let status = Status::deadline_exceeded(
                                    "the call took longer than the server's request timeout and was abandoned",
                                );
                                Ok(refuse(&shared, &ctx, status).await)
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
                        Ok(refuse(&shared, &ctx, Status::permission_denied(msg)).await)
                    }
                    Decision::Unknown => {
                        tracing::warn!("call refused: no policy entry for this RPC");
                        Ok(refuse(&shared, &ctx, Status::permission_denied("no policy allows this RPC")).await)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Audits a refused or abandoned call in its own transaction and builds the response. An audit failure is
/// logged; the call stays refused.
async fn refuse<B: Default>(
    shared: &Shared,
    ctx: &CallContext,
    status: Status,
) -> http::Response<B> {
    let record = ctx.record(Vec::new(), code_name(status.code()), shared.clock.now());
    if let Err(e) = audit::append_alone(&shared.pool, shared.schema, &record).await {
        tracing::error!(error = %e, "cannot audit a refused call");
    }
    tracing::Span::current().record("grpc.status", code_name(status.code()));
    status.into_http()
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
