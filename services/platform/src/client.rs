//! Outgoing calls to other suite services: every call carries the W3C trace context of the
//! current span and this service's own SERVICE token. In a deployment the token lives in a file
//! that the platform refreshes; it is re-read whenever the file changes. Calls to `https://`
//! addresses go over TLS ([`crate::tls::ClientTls`], set for the process with
//! [`configure_tls`]).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::SystemTime,
};

use secrecy::{ExposeSecret, SecretString};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::tls::ClientTls;

/// Where this service's own token comes from.
#[derive(Clone)]
pub enum TokenSource {
    /// A fixed token (development, tests).
    Static(SecretString),
    /// A file re-read when its modification time changes.
    File {
        path: PathBuf,
        cache: Arc<Mutex<Option<(SystemTime, SecretString)>>>,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static(_) => f.write_str("TokenSource::Static(..)"),
            Self::File { path, .. } => write!(f, "TokenSource::File({})", path.display()),
        }
    }
}

impl TokenSource {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File {
            path: path.into(),
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The current token.
    pub fn token(&self) -> Result<SecretString, Status> {
        match self {
            Self::Static(t) => Ok(t.clone()),
            Self::File { path, cache } => {
                let unavailable = |what: &str| {
                    tracing::error!(path = %path.display(), "{what}");
                    Status::unavailable("this service has no valid identity token")
                };
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map_err(|_| unavailable("cannot stat service token file"))?;
                let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((seen, token)) = guard.as_ref()
                    && *seen == modified
                {
                    return Ok(token.clone());
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|_| unavailable("cannot read service token file"))?;
                let token = SecretString::from(text.trim().to_owned());
                *guard = Some((modified, token.clone()));
                Ok(token)
            }
        }
    }
}

/// A request on behalf of `end_user`: the callee's audit names both this service (its SERVICE
/// token) and the user (the [`crate::auth::END_USER_METADATA`] entry). Forward
/// [`crate::audit::CallContext::end_user_or_caller`], so that a chain of services keeps naming
/// the person who started it.
pub fn on_behalf_of<T>(message: T, end_user: &crate::auth::Principal) -> Request<T> {
    let mut request = Request::new(message);
    match MetadataValue::try_from(end_user.to_end_user_metadata()) {
        Ok(value) => {
            request
                .metadata_mut()
                .insert(crate::auth::END_USER_METADATA, value);
        }
        // base64url is always a valid header value; keep the call rather than lose it
        Err(_) => tracing::error!("cannot encode the end user of an outgoing call"),
    }
    request
}

/// Adds the bearer token and trace context to every outgoing request.
#[derive(Clone, Debug)]
pub struct Outgoing {
    token: TokenSource,
}

impl Outgoing {
    pub fn new(token: TokenSource) -> Self {
        Self { token }
    }
}

impl Interceptor for Outgoing {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let token = self.token.token()?;
        let value = MetadataValue::try_from(format!("Bearer {}", token.expose_secret()))
            .map_err(|_| Status::unavailable("service token is not a valid header value"))?;
        req.metadata_mut().insert("authorization", value);
        crate::telemetry::inject_current(req.metadata_mut());
        Ok(req)
    }
}

/// The TLS of the channels [`channel`] makes; the system's roots until [`configure_tls`].
static TLS: RwLock<ClientTls> = RwLock::new(ClientTls::system());

/// Sets the TLS of every channel [`channel`] makes from now on (to the intake service, to
/// notifications for the relay and the subscription, to event sinks): a service binary calls it
/// once at start, before it makes any channel, with [`crate::config::TlsArgs::client`].
pub fn configure_tls(tls: ClientTls) {
    *TLS.write().unwrap_or_else(|p| p.into_inner()) = tls;
}

/// The TLS [`channel`] uses now.
pub fn tls() -> ClientTls {
    TLS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A channel to `url` (e.g. `http://127.0.0.1:50051`) wrapped with [`Outgoing`]: plaintext to
/// an `http://` address, TLS to an `https://` one with the process's [`configure_tls`] (by
/// default the system's roots). Connects lazily, so services can start in any order.
pub fn channel(
    url: &str,
    token: TokenSource,
) -> Result<InterceptedService<Channel, Outgoing>, tonic::transport::Error> {
    channel_with(url, token, &tls())
}

/// [`channel`] with the TLS of its own for an `https://` address. The certificate of the
/// called service must name the address's host (DNS name or IP address).
pub fn channel_with(
    url: &str,
    token: TokenSource,
    tls: &ClientTls,
) -> Result<InterceptedService<Channel, Outgoing>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(10));
    let channel = if endpoint.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
        endpoint.connect_with_connector_lazy(tls.connector())
    } else {
        if tls.is_configured() {
            tracing::warn!(
                url,
                "calls to this address are not encrypted although TLS is configured: use https://"
            );
        }
        endpoint.connect_lazy()
    };
    Ok(InterceptedService::new(channel, Outgoing::new(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_tokens_are_reread_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let source = TokenSource::file(&path);
        assert_eq!(source.token().unwrap().expose_secret(), "first");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "second").unwrap();
        // make sure the modification time moves even on coarse file systems
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(source.token().unwrap().expose_secret(), "second");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(source.token().unwrap_err().code(), tonic::Code::Unavailable);
    }

    #[test]
    fn interceptor_sets_the_bearer_token() {
        let mut out = Outgoing::new(TokenSource::Static(SecretString::from("abc")));
        let req = out.call(Request::new(())).unwrap();
        assert_eq!(req.metadata().get("authorization").unwrap(), "Bearer abc");
    }

    #[test]
    fn requests_on_behalf_of_a_user_carry_it_past_the_interceptor() {
        use crate::auth::{OrgType, Principal, Role};
        let user = Principal {
            sub: "p1".into(),
            org: "school-1".into(),
            org_type: OrgType::School,
            roles: vec![Role::Professional],
            municipalities: vec![],
        };
        let req = on_behalf_of((), &user);
        let mut out = Outgoing::new(TokenSource::Static(SecretString::from("abc")));
        let req = out.call(req).unwrap();
        let value = req
            .metadata()
            .get(crate::auth::END_USER_METADATA)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(Principal::from_end_user_metadata(value).unwrap(), user);
        assert_eq!(req.metadata().get("authorization").unwrap(), "Bearer abc");
    }
}
