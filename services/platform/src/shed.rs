//! Load shedding: at most N calls in flight per server; the next one is refused at once with
//! RESOURCE_EXHAUSTED instead of waiting in a queue that grows. Health checks are never shed, so
//! an overloaded replica is not mistaken for a dead one.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::Status;
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Shed<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Send,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        if req.uri().path().starts_with("/grpc.health.") {
            return Box::pin(self.inner.call(req));
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let res = fut.await;
                    drop(permit);
                    res
                })
            }
            Err(_) => {
                tracing::warn!(
                    path = req.uri().path(),
                    "shedding load: too many calls in flight"
                );
                Box::pin(async {
                    Ok(Status::resource_exhausted(
                        "server busy: too many calls in flight, retry later",
                    )
                    .into_http())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    fn grpc_status(res: &http::Response<tonic::body::Body>) -> Option<&str> {
        res.headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn sheds_calls_beyond_the_limit_and_recovers() {
        let release = Arc::new(Notify::new());
        let gate = release.clone();
        let inner = service_fn(move |_req: http::Request<()>| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
            }
        });
        let svc = ShedLayer::new(1).layer(inner);

        let first = tokio::spawn(
            svc.clone()
                .oneshot(request("/zvv.intake.v1.SubjectService/GetSubject")),
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        let shed = svc
            .clone()
            .oneshot(request("/zvv.intake.v1.SubjectService/GetSubject"))
            .await
            .unwrap();
        assert_eq!(
            grpc_status(&shed),
            Some("8"),
            "RESOURCE_EXHAUSTED while one call is in flight"
        );

        // health checks are never shed; this one waits for the gate like any call
        let health = tokio::spawn(svc.clone().oneshot(request("/grpc.health.v1.Health/Check")));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.notify_waiters();
        let ok = first.await.unwrap().unwrap();
        assert_eq!(grpc_status(&ok), None);
        assert_eq!(grpc_status(&health.await.unwrap().unwrap()), None);

        // the permit is back: the next call goes through
        let next = tokio::spawn(
            svc.clone()
                .oneshot(request("/zvv.intake.v1.SubjectService/GetSubject")),
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.notify_waiters();
        assert_eq!(grpc_status(&next.await.unwrap().unwrap()), None);
    }
}
