//! The EventSink of suite services over gRPC, each called with a SERVICE token minted for it.

use std::collections::BTreeMap;

use tonic::{service::interceptor::InterceptedService, transport::Channel};
use zvv_platform::client::Outgoing;
use zvv_proto::events::v1::{DeliverRequest, event_sink_client::EventSinkClient};

use super::Sinks;
use crate::domain::events::Event;

/// Where each suite service's EventSink is, with the channel (and token) to call it.
pub type SinkEndpoints = BTreeMap<String, InterceptedService<Channel, Outgoing>>;

#[derive(Debug, Clone, Default)]
pub struct ServiceSinks {
    endpoints: SinkEndpoints,
}

impl ServiceSinks {
    pub fn new(endpoints: SinkEndpoints) -> Self {
        Self { endpoints }
    }
}

impl Sinks for ServiceSinks {
    async fn deliver(
        &self,
        service: &str,
        subscription_id: uuid::Uuid,
        event: &Event,
    ) -> Result<(), String> {
        let Some(channel) = self.endpoints.get(service) else {
            return Err(format!("no endpoint is configured for service {service}"));
        };
        let mut client = EventSinkClient::new(channel.clone());
        let request = DeliverRequest {
            event: Some(crate::grpc::event_to_proto(event)),
            subscription_id: subscription_id.to_string(),
        };
        client.deliver(request).await.map(drop).map_err(|s| {
            format!(
                "{} {}",
                zvv_platform::layer::code_name(s.code()),
                zvv_platform::error::truncate(s.message(), 160)
            )
        })
    }

    fn knows(&self, service: &str) -> bool {
        self.endpoints.contains_key(service)
    }
}
