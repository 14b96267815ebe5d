//! Small pieces every gRPC adapter needs: the call context the call layer put on the request,
//! and the wire forms of times and dates.

use chrono::{DateTime, NaiveDate, Utc};
use tonic::{Request, Status};
use zvv_proto::prost_types::Timestamp;

use crate::{audit::CallContext, error::ApiError};

/// The context of this call, set by [`crate::layer::CallLayer`].
pub fn call_context<T>(req: &Request<T>) -> Result<CallContext, Status> {
    req.extensions()
        .get::<CallContext>()
        .cloned()
        .ok_or_else(|| {
            ApiError::internal("call context missing: the call layer is not installed")
                .into_status()
        })
}

/// A protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// `YYYY-MM-DD`, or empty for none.
pub fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let t = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        assert_eq!(
            timestamp(t),
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 5_000
            }
        );
        assert_eq!(date_text(NaiveDate::from_ymd_opt(2026, 2, 3)), "2026-02-03");
        assert_eq!(date_text(None), "");
        let status = call_context(&Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
