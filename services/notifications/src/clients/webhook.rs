//! Webhooks over HTTP(S) with reqwest: no redirects, a timeout per attempt, and every address a
//! host name resolves to checked against the target policy when the connection is made (so a
//! name that resolves to an internal address later is refused too).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{WebhookAnswer, WebhookRequest, Webhooks};
use crate::domain::target::TargetPolicy;

#[derive(Debug, Clone)]
struct CheckedResolver {
    policy: Arc<TargetPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.check_addr(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let why = resolved
                    .first()
                    .and_then(|a| policy.check_addr(a.ip()).err())
                    .unwrap_or_else(|| "does not resolve".to_owned());
                return Err(format!("{host} {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Webhooks posted by one shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
}

impl HttpWebhooks {
    pub fn new(policy: TargetPolicy) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // a proxy would connect to the target itself, past the address checks
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("zvv-notifications/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self { client, policy })
    }

    /// The policy's verdict on a URL's form and, for an address literal, its address (names
    /// are checked when they are resolved).
    pub fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        let url = self.policy.check_url(url)?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            self.policy.check_addr(ip)?;
        }
        Ok(url)
    }

    /// Resolves a host name now and checks every address (at subscription time, so that a
    /// caller learns at once that an internal name is refused).
    pub async fn check_resolved(&self, url: &reqwest::Url) -> Result<(), String> {
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(443);
        // one answer for a name that does not resolve and one that resolves inside: the
        // difference would tell a caller which internal names exist
        let refused = || "does not resolve to a public address (or is not allow-listed)".to_owned();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| refused())?
            .collect();
        if addrs.is_empty()
            || addrs
                .iter()
                .any(|a| self.policy.check_addr(a.ip()).is_err())
        {
            return Err(refused());
        }
        Ok(())
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "no answer within the timeout".into()
    } else if err.is_connect() {
        // the resolver's refusal is in the chain; keep only our own words
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            let text = s.to_string();
            if text.contains("refused unless allow-listed") || text.contains("does not resolve") {
                return zvv_platform::error::truncate(&text, 200);
            }
            source = s.source();
        }
        "could not connect".into()
    } else {
        "the request failed".into()
    }
}

impl Webhooks for HttpWebhooks {
    async fn post(&self, request: WebhookRequest, timeout: Duration) -> WebhookAnswer {
        let url = match self.check(&request.url) {
            Ok(url) => url,
            Err(why) => return WebhookAnswer::NoAnswer(format!("the URL {why}")),
        };
        let mut builder = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &request.webhook_id)
            .header("webhook-timestamp", request.timestamp.to_string())
            .header("webhook-signature", &request.signature)
            .body(request.body);
        if let Some(auth) = &request.authorization {
            builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        }
        match builder.send().await {
            Ok(response) => WebhookAnswer::Status(response.status().as_u16()),
            Err(e) => WebhookAnswer::NoAnswer(describe(&e)),
        }
    }
}
