//! Connections from the command line to the services, and readable errors.

use anyhow::Context;
use secrecy::SecretString;
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};
use tonic_types::StatusExt;
use zvv_platform::client::{Outgoing, TokenSource, channel};
use zvv_proto::{
    intake::v1::subject_service_client::SubjectServiceClient,
    reintegration::v1::{
        continuity_service_client::ContinuityServiceClient,
        detention_service_client::DetentionServiceClient,
    },
    signalling::v1::{
        referral_service_client::ReferralServiceClient, signal_service_client::SignalServiceClient,
    },
};

pub type Intake = SubjectServiceClient<InterceptedService<Channel, Outgoing>>;
pub type Signalling = SignalServiceClient<InterceptedService<Channel, Outgoing>>;
pub type Referrals = ReferralServiceClient<InterceptedService<Channel, Outgoing>>;
pub type Detentions = DetentionServiceClient<InterceptedService<Channel, Outgoing>>;
pub type Continuity = ContinuityServiceClient<InterceptedService<Channel, Outgoing>>;

#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Address of the intake service.
    #[arg(
        long,
        env = "ZVV_INTAKE_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub intake_addr: String,
    /// Address of the signalling service.
    #[arg(
        long,
        env = "ZVV_SIGNALLING_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub signalling_addr: String,
    /// Bearer token (see `zvv token`).
    #[arg(long, env = "ZVV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The bearer token of `--token`/`ZVV_TOKEN`, or an error that says how to get one.
pub fn bearer(token: Option<&str>) -> anyhow::Result<TokenSource> {
    match token {
        Some(t) if !t.trim().is_empty() => {
            Ok(TokenSource::Static(SecretString::from(t.trim().to_owned())))
        }
        _ => anyhow::bail!(
            "no token: pass --token or set ZVV_TOKEN, e.g. \
             export ZVV_TOKEN=$(zvv token --org gm0363 --org-type MUNICIPALITY --role PROFESSIONAL | tail -n1)"
        ),
    }
}

/// How to reach the reintegration service, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct ReintegrationConn {
    /// Address of the reintegration service.
    #[arg(
        long,
        env = "ZVV_REINTEGRATION_ADDR",
        default_value = "http://127.0.0.1:50053"
    )]
    pub reintegration_addr: String,
    /// Bearer token (see `zvv token`).
    #[arg(long, env = "ZVV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ReintegrationConn {
    fn channel(&self) -> anyhow::Result<InterceptedService<Channel, Outgoing>> {
        channel(&self.reintegration_addr, bearer(self.token.as_deref())?)
            .with_context(|| format!("invalid reintegration address {}", self.reintegration_addr))
    }

    pub fn detentions(&self) -> anyhow::Result<Detentions> {
        Ok(DetentionServiceClient::new(self.channel()?))
    }

    pub fn continuity(&self) -> anyhow::Result<Continuity> {
        Ok(ContinuityServiceClient::new(self.channel()?))
    }
}

impl ConnArgs {
    fn token(&self) -> anyhow::Result<TokenSource> {
        bearer(self.token.as_deref())
    }

    pub fn signalling(&self) -> anyhow::Result<Signalling> {
        let channel = channel(&self.signalling_addr, self.token()?)
            .with_context(|| format!("invalid signalling address {}", self.signalling_addr))?;
        Ok(SignalServiceClient::new(channel))
    }

    pub fn referrals(&self) -> anyhow::Result<Referrals> {
        let channel = channel(&self.signalling_addr, self.token()?)
            .with_context(|| format!("invalid signalling address {}", self.signalling_addr))?;
        Ok(ReferralServiceClient::new(channel))
    }

    pub fn intake(&self) -> anyhow::Result<Intake> {
        let channel = channel(&self.intake_addr, self.token()?)
            .with_context(|| format!("invalid intake address {}", self.intake_addr))?;
        Ok(SubjectServiceClient::new(channel))
    }
}

/// A status as a person should read it: code, message, and any field violations.
pub fn describe(status: &Status) -> String {
    let mut out = match status.code() {
        Code::Unavailable => format!(
            "service unavailable ({}); is `zvv up` running?",
            status.message()
        ),
        code => format!("{code:?}: {}", status.message()),
    };
    let details = status.get_error_details();
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            out.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    if let Some(info) = details.error_info() {
        let mut entries: Vec<_> = info.metadata.iter().collect();
        entries.sort();
        for (k, v) in entries {
            out.push_str(&format!("\n  {k}: {v}"));
        }
    }
    out
}

/// Turns a failed call into an error with a readable message.
pub fn check<T>(result: Result<tonic::Response<T>, Status>) -> anyhow::Result<T> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| anyhow::anyhow!(describe(&s)))
}
