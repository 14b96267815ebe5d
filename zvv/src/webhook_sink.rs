//! `zvv webhook-sink`: a small local HTTP receiver for trying notification webhooks by hand. It
//! checks the Standard Webhooks signature of every POST with the subscription's signing secret,
//! answers 204 to a valid one and 401 otherwise, and prints each notification on one line.
//!
//! [`serve`] is the receiver itself, for tests that run it in-process. This file uses no other
//! module of the `zvv` command, so that tests can include it as it is.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, Method, StatusCode},
};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zvv_notifications::domain::webhook::{parse_secret, verify};

/// How far a `webhook-timestamp` may be from this machine's clock, in seconds (Standard
/// Webhooks: five minutes).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The channel of the test notification a webhook gets when its subscription is created.
pub const TEST_CHANNEL: &str = "test";

/// Largest body the sink reads.
const MAX_BODY: usize = 1024 * 1024;

/// How many webhook ids the sink remembers to mark repeats.
const REMEMBERED: usize = 10_000;

/// Options of `zvv webhook-sink`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = SINK_HELP)]
pub struct WebhookSinkArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8085")]
    listen: SocketAddr,
    /// The subscription's signing secret (whsec_…), as `zvv subscription create` printed it.
    #[arg(
        long,
        env = "ZVV_WEBHOOK_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file"
    )]
    secret: Option<SecretString>,
    /// File with the signing secret, read again at every request: it may be written after the
    /// sink started (e.g. by `zvv subscription create --signing-secret-file FILE`).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Answer 401 unless the Authorization header is exactly this value (the
    /// `--authorization` of the subscription).
    #[arg(
        long,
        value_name = "VALUE",
        conflicts_with = "expect_authorization_file"
    )]
    expect_authorization: Option<SecretString>,
    /// File with the Authorization value to expect (trailing newline removed).
    #[arg(long, value_name = "FILE")]
    expect_authorization_file: Option<PathBuf>,
}

const SINK_HELP: &str = "\
Every POST must carry webhook-id, webhook-timestamp and webhook-signature headers; the \
timestamp may be at most 5 minutes off and the signature must be the HMAC-SHA256 of \
`id.timestamp.body` with the signing secret (v1). Valid notifications get 204, others 401.

The signing secret of a subscription exists only once the subscription is made, but the \
service sends a test notification (channel `test`) while making it and requires 204. The sink \
therefore answers 204 to test notifications whose signature it cannot check, and says so; every \
other notification must be signed with the secret. Start the sink with --secret-file FILE and \
create the subscription with --signing-secret-file FILE to have it check everything from then on.

Example:
  zvv webhook-sink --listen 127.0.0.1:8085 --secret-file sink.secret &
  zvv subscription create --channel signalling.matches \\
      --webhook http://127.0.0.1:8085/hook --signing-secret-file sink.secret";

/// Where the sink gets the signing secret from.
#[derive(Clone)]
pub enum SecretSource {
    /// None yet: only test notifications are answered 204.
    None,
    /// Known from the start.
    Fixed(Arc<SecretBox<Vec<u8>>>),
    /// A file read at every request (missing or empty: none yet).
    File(PathBuf),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("SecretSource::None"),
            Self::Fixed(_) => f.write_str("SecretSource::Fixed(..)"),
            Self::File(path) => write!(f, "SecretSource::File({})", path.display()),
        }
    }
}

impl SecretSource {
    /// A secret in its `whsec_…` form.
    pub fn fixed(text: &str) -> Result<Self, &'static str> {
        Ok(Self::Fixed(Arc::new(SecretBox::new(Box::new(
            parse_secret(text)?,
        )))))
    }

    /// The secret now; `Err` with a reason when a file holds something that is no secret.
    fn current(&self) -> Result<Option<SecretBox<Vec<u8>>>, String> {
        match self {
            Self::None => Ok(None),
            Self::Fixed(secret) => Ok(Some(SecretBox::new(Box::new(
                secret.expose_secret().clone(),
            )))),
            Self::File(path) => read_secret_file(path),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<Option<SecretBox<Vec<u8>>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => SecretString::from(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(format!("cannot read the secret file {}", path.display())),
    };
    if text.expose_secret().trim().is_empty() {
        return Ok(None);
    }
    parse_secret(text.expose_secret())
        .map(|bytes| Some(SecretBox::new(Box::new(bytes))))
        .map_err(|why| format!("the secret file {}: {why}", path.display()))
}

/// How the sink behaves.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    pub secret: SecretSource,
    /// The Authorization header every notification must carry, if any.
    pub expect_authorization: Option<Arc<SecretString>>,
}

/// What the sink made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature is right: answered 204.
    Verified,
    /// A test notification whose signature could not be checked: answered 204.
    TestUnchecked,
    /// Answered with this status (400, 401, 405) for this reason.
    Rejected(u16, String),
}

/// The ZGW Notificatie fields the sink shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub kanaal: String,
    pub actie: String,
    pub resource_url: String,
    pub aanmaakdatum: String,
    /// `key=value`, sorted by key.
    pub kenmerken: Vec<(String, String)>,
}

/// One request the sink answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: chrono::DateTime<chrono::Utc>,
    pub webhook_id: Option<String>,
    pub verdict: Verdict,
    pub notification: Option<Notification>,
    /// The webhook id was accepted before (a retry or a redelivery).
    pub repeat: bool,
}

impl Received {
    /// The HTTP status the sink answered.
    pub fn status(&self) -> u16 {
        match &self.verdict {
            Verdict::Verified | Verdict::TestUnchecked => 204,
            Verdict::Rejected(status, _) => *status,
        }
    }

    /// One line for a person: the notification and what the sink made of it. Never a secret
    /// or an Authorization value.
    pub fn line(&self) -> String {
        let at = self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let id = self.webhook_id.as_deref().unwrap_or("-");
        match &self.verdict {
            Verdict::Rejected(status, why) => {
                format!("[{at}] rejected with {status}: {why} (webhook-id {id})")
            }
            verdict => {
                let n = self.notification.clone().unwrap_or_default();
                let kenmerken = if n.kenmerken.is_empty() {
                    "-".to_owned()
                } else {
                    n.kenmerken
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let check = if *verdict == Verdict::Verified {
                    "signature valid"
                } else {
                    "test notification, signature not checked: the secret of a new subscription \
                     exists only once it is made"
                };
                let repeat = if self.repeat { "; repeat" } else { "" };
                format!(
                    "[{at}] {} {} {} kenmerken: {kenmerken} (webhook-id {id}; {check}{repeat})",
                    or_dash(&n.kanaal),
                    or_dash(&n.actie),
                    or_dash(&n.resource_url),
                )
            }
        }
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// What every request handler shares.
struct Shared {
    options: SinkOptions,
    report: Box<dyn Fn(Received) + Send + Sync>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Shared {
    /// Remembers an accepted webhook id; true when it was accepted before.
    fn seen_before(&self, id: &str) -> bool {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *guard;
        if set.contains(id) {
            return true;
        }
        set.insert(id.to_owned());
        order.push_back(id.to_owned());
        if order.len() > REMEMBERED
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        false
    }
}

/// Serves the sink on `listener` (HTTP/1) until `shutdown` completes; `report` is called with
/// every request it answered, after the answer is decided.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: SinkOptions,
    report: impl Fn(Received) + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        options,
        report: Box::new(report),
        seen: Mutex::new((HashSet::new(), VecDeque::new())),
    });
    let app = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let received = judge(&shared, &method, &headers, &body);
    let status = StatusCode::from_u16(received.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    (shared.report)(received);
    status
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Equal bytes, compared without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The notification fields of a ZGW Notificatie body, if it is one.
fn notification(body: &[u8]) -> Option<Notification> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut kenmerken: Vec<(String, String)> = object
        .get("kenmerken")
        .and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    kenmerken.sort();
    Some(Notification {
        kanaal: text("kanaal"),
        actie: text("actie"),
        resource_url: text("resourceUrl"),
        aanmaakdatum: text("aanmaakdatum"),
        kenmerken,
    })
}

/// Decides the answer to one request.
fn judge(shared: &Shared, method: &Method, headers: &HeaderMap, body: &[u8]) -> Received {
    let now = chrono::Utc::now();
    let webhook_id = header(headers, "webhook-id").map(str::to_owned);
    let reject = |status: u16, why: String| Received {
        at: now,
        webhook_id: webhook_id.clone(),
        verdict: Verdict::Rejected(status, why),
        notification: None,
        repeat: false,
    };
    if method != Method::POST {
        return reject(405, format!("{method} is not a POST"));
    }
    let (Some(id), Some(timestamp), Some(signature)) = (
        webhook_id.as_deref(),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
    ) else {
        return reject(
            400,
            "webhook-id, webhook-timestamp and webhook-signature headers are required".into(),
        );
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return reject(400, "webhook-timestamp is not a number of seconds".into());
    };
    let off = now.timestamp().saturating_sub(timestamp);
    if off.abs() > TOLERANCE_SECS {
        return reject(
            401,
            format!(
                "webhook-timestamp is {}s {} this machine's clock (at most {TOLERANCE_SECS}s \
                 allowed)",
                off.abs(),
                if off > 0 { "behind" } else { "ahead of" }
            ),
        );
    }
    if let Some(expected) = &shared.options.expect_authorization {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !same(given, expected.expose_secret().as_bytes()) {
            return reject(
                401,
                "the Authorization header is missing or differs from the expected value".into(),
            );
        }
    }
    let secret = match shared.options.secret.current() {
        Ok(secret) => secret,
        Err(why) => return reject(401, why),
    };
    let verified = secret
        .as_ref()
        .is_some_and(|s| verify(s.expose_secret(), id, timestamp, body, signature));
    let parsed = notification(body);
    let verdict = if verified {
        if parsed.is_none() {
            return reject(400, "the body is not a JSON notification".into());
        }
        Verdict::Verified
    } else if parsed.as_ref().is_some_and(|n| n.kanaal == TEST_CHANNEL) {
        Verdict::TestUnchecked
    } else if secret.is_none() {
        return reject(
            401,
            "no signing secret yet: only test notifications are accepted (give --secret or \
             write the secret file)"
                .into(),
        );
    } else {
        return reject(
            401,
            "the signature does not match the signing secret".into(),
        );
    };
    Received {
        at: now,
        repeat: shared.seen_before(id),
        webhook_id,
        verdict,
        notification: parsed,
    }
}

/// The one value a file holds (a trailing newline removed), e.g. an Authorization value.
pub fn read_value_file(path: &Path) -> anyhow::Result<SecretString> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        anyhow::bail!("{} is empty", path.display());
    }
    Ok(SecretString::from(value))
}

/// Runs `zvv webhook-sink` until Ctrl-C or SIGTERM.
pub async fn run(args: WebhookSinkArgs) -> anyhow::Result<()> {
    let shutdown = zvv_platform::server::shutdown_signal();
    let (secret, about) = match (&args.secret, &args.secret_file) {
        (Some(text), _) => (
            SecretSource::fixed(text.expose_secret())
                .map_err(|why| anyhow::anyhow!("--secret: {why}"))?,
            "signatures are checked with the secret given".to_owned(),
        ),
        (None, Some(path)) => {
            let about = match read_secret_file(path).map_err(anyhow::Error::msg)? {
                Some(_) => format!(
                    "signatures are checked with the secret in {}",
                    path.display()
                ),
                None => format!(
                    "{} holds no secret yet: test notifications only until it does (it is read \
                     at every request)",
                    path.display()
                ),
            };
            (SecretSource::File(path.clone()), about)
        }
        (None, None) => (
            SecretSource::None,
            "no signing secret: test notifications only (give --secret or --secret-file)"
                .to_owned(),
        ),
    };
    let expect_authorization = match (&args.expect_authorization, &args.expect_authorization_file) {
        (Some(value), _) => Some(Arc::new(value.clone())),
        (None, Some(path)) => Some(Arc::new(read_value_file(path)?)),
        (None, None) => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    println!("webhook sink listening on http://{addr}/ (any path; Ctrl-C stops)");
    println!("{about}");
    if expect_authorization.is_some() {
        println!("requests must carry the expected Authorization header");
    }
    let options = SinkOptions {
        secret,
        expect_authorization,
    };
    serve(
        listener,
        options,
        |received| println!("{}", received.line()),
        shutdown,
    )
    .await
    .context("serving the webhook sink")
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvv_notifications::domain::webhook::{secret_text, signature};

    fn shared(secret: SecretSource) -> Shared {
        Shared {
            options: SinkOptions {
                secret,
                expect_authorization: Some(Arc::new(SecretString::from("Bearer abc"))),
            },
            report: Box::new(|_| {}),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    fn headers(id: &str, timestamp: i64, signature: &str, authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h.insert("authorization", authorization.parse().unwrap());
        h
    }

    #[test]
    fn signed_notifications_pass_and_everything_else_is_refused() {
        let secret = vec![7u8; 32];
        let sink = shared(SecretSource::fixed(&secret_text(&secret)).unwrap());
        let body = br#"{"kanaal":"signalling.matches","actie":"update","resourceUrl":"u","kenmerken":{"kind":"CLIENT","action":"found"}}"#;
        let now = chrono::Utc::now().timestamp();
        let good = signature(&secret, "e1", now, body);
        let r = judge(
            &sink,
            &Method::POST,
            &headers("e1", now, &good, "Bearer abc"),
            body,
        );
        assert_eq!(r.verdict, Verdict::Verified);
        assert!(!r.repeat);
        let line = r.line();
        assert!(
            line.contains("signalling.matches update u kenmerken: action=found kind=CLIENT"),
            "{line}"
        );
        let again = judge(
            &sink,
            &Method::POST,
            &headers("e1", now, &good, "Bearer abc"),
            body,
        );
        assert!(again.repeat);

        let cases = [
            (
                headers("e1", now, &good, "Bearer xyz"),
                401,
                "Authorization",
            ),
            (
                headers(
                    "e1",
                    now - 301,
                    &signature(&secret, "e1", now - 301, body),
                    "Bearer abc",
                ),
                401,
                "behind",
            ),
            (
                headers(
                    "e1",
                    now + 400,
                    &signature(&secret, "e1", now + 400, body),
                    "Bearer abc",
                ),
                401,
                "ahead",
            ),
            (
                headers(
                    "e1",
                    now,
                    &signature(&[1u8; 32], "e1", now, body),
                    "Bearer abc",
                ),
                401,
                "does not match",
            ),
            (
                headers("e2", now, &good, "Bearer abc"),
                401,
                "does not match",
            ),
        ];
        for (h, status, why) in cases {
            let r = judge(&sink, &Method::POST, &h, body);
            assert_eq!(r.status(), status, "{r:?}");
            assert!(r.line().contains(why), "{}", r.line());
            assert!(!r.line().contains("Bearer"), "{}", r.line());
        }
        let r = judge(&sink, &Method::GET, &HeaderMap::new(), b"");
        assert_eq!(r.status(), 405);
        let r = judge(&sink, &Method::POST, &HeaderMap::new(), body);
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn test_notifications_pass_before_the_secret_is_known() {
        let sink = shared(SecretSource::None);
        let now = chrono::Utc::now().timestamp();
        let test = br#"{"kanaal":"test","actie":"create","resourceUrl":"u","kenmerken":{}}"#;
        let other = br#"{"kanaal":"signalling.matches","actie":"update"}"#;
        let sig = signature(&[3u8; 32], "t1", now, test);
        let r = judge(
            &sink,
            &Method::POST,
            &headers("t1", now, &sig, "Bearer abc"),
            test,
        );
        assert_eq!(r.verdict, Verdict::TestUnchecked);
        assert!(r.line().contains("signature not checked"), "{}", r.line());
        let r = judge(
            &sink,
            &Method::POST,
            &headers("t2", now, &sig, "Bearer abc"),
            other,
        );
        assert_eq!(r.status(), 401);
        assert!(r.line().contains("no signing secret yet"), "{}", r.line());
    }
}
