//! Telemetry in one place: `tracing` with an env filter and plain or JSON output, OpenTelemetry
//! spans exported over OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace
//! context carried across gRPC calls. Spans always get real trace ids (so that audit records and
//! logs can name them), even when nothing is exported.

use std::str::FromStr;

use opentelemetry::{
    Context, global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource, metrics::SdkMeterProvider, propagation::TraceContextPropagator,
    trace::SdkTracerProvider,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Self::Plain),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (plain or json)")),
        }
    }
}

/// Flushes and shuts down span and metric export when dropped.
#[must_use = "telemetry is flushed when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans and metrics now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
        if let Some(m) = &self.meters {
            let _ = m.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
    }
}

type CounterCell = std::sync::OnceLock<opentelemetry::metrics::Counter<u64>>;

fn add_one(cell: &CounterCell, name: &'static str, description: &'static str) {
    cell.get_or_init(|| {
        global::meter("zvv")
            .u64_counter(name)
            .with_description(description)
            .build()
    })
    .add(1, &[]);
}

/// Counts one unauthenticated call answered without an audit record because its peer used up
/// its budget (metric `zvv.auth.refusals_not_audited`, exported over OTLP when configured).
pub fn count_shed_refusal() {
    static COUNTER: CounterCell = CounterCell::new();
    add_one(
        &COUNTER,
        "zvv.auth.refusals_not_audited",
        "unauthenticated calls refused without an audit record (per-peer budget used up)",
    );
}

/// Counts one call answered without an audit record because the write failed, e.g. while the
/// database was unreachable (metric `zvv.audit.unrecorded_calls`).
pub fn count_unrecorded_call() {
    static COUNTER: CounterCell = CounterCell::new();
    add_one(
        &COUNTER,
        "zvv.audit.unrecorded_calls",
        "calls answered without an audit record because the audit write failed",
    );
}

/// Records the relay lag of `schema`'s outbox: the unpublished events (metric
/// `zvv.outbox.unpublished`) and the age of the oldest of them in seconds
/// (`zvv.outbox.lag_seconds`), each with the attribute `schema`.
pub fn record_outbox_lag(schema: &'static str, unpublished: u64, age_seconds: f64) {
    use opentelemetry::KeyValue;
    static UNPUBLISHED: std::sync::OnceLock<opentelemetry::metrics::Gauge<u64>> =
        std::sync::OnceLock::new();
    static AGE: std::sync::OnceLock<opentelemetry::metrics::Gauge<f64>> =
        std::sync::OnceLock::new();
    let attributes = [KeyValue::new("schema", schema)];
    UNPUBLISHED
        .get_or_init(|| {
            global::meter("zvv")
                .u64_gauge("zvv.outbox.unpublished")
                .with_description("outbox events not yet published to notifications")
                .build()
        })
        .record(unpublished, &attributes);
    AGE.get_or_init(|| {
        global::meter("zvv")
            .f64_gauge("zvv.outbox.lag_seconds")
            .with_description("age of the oldest outbox event not yet published")
            .with_unit("s")
            .build()
    })
    .record(age_seconds, &attributes);
}

const DEFAULT_FILTER: &str = "info,h2=warn,tower=warn,hyper=warn,sqlx=warn,opentelemetry=warn";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Stdout(LogFormat),
    /// libtest's captured output, shown only for failing tests.
    Test,
}

/// Installs the global subscriber and propagator. `RUST_LOG` sets the filter. Calling it again
/// keeps the first subscriber.
pub fn init(service: &str, format: LogFormat) -> TelemetryGuard {
    install(service, Sink::Stdout(format))
}

/// Like [`init`], with log lines captured by the test runner.
pub fn init_for_tests(service: &str) -> TelemetryGuard {
    install(service, Sink::Test)
}

fn install(service: &str, sink: Sink) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());

    let mut builder = SdkTracerProvider::builder();
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    let mut export_error = None;
    let mut meters = None;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| service.to_owned());
    if !endpoint.trim().is_empty() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e.to_string()),
        }
        match opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                meters = Some(
                    SdkMeterProvider::builder()
                        .with_periodic_exporter(exporter)
                        .with_resource(Resource::builder().with_service_name(name.clone()).build())
                        .build(),
                );
            }
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let provider = builder
        .with_resource(Resource::builder().with_service_name(name).build())
        .build();
    let tracer = provider.tracer("zvv");

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match sink {
        Sink::Test => registry
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .try_init(),
        Sink::Stdout(LogFormat::Plain) => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        Sink::Stdout(LogFormat::Json) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
    };
    if installed.is_ok() {
        global::set_tracer_provider(provider.clone());
        if let Some(m) = &meters {
            global::set_meter_provider(m.clone());
        }
    }
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "export disabled: cannot build the OTLP exporter");
    } else if !endpoint.trim().is_empty() {
        tracing::info!(endpoint = %endpoint, "exporting spans and metrics over OTLP");
    }
    TelemetryGuard {
        provider: Some(provider),
        meters,
    }
}

/// The trace id of the current span, as 32 hex digits, or empty outside a trace.
pub fn current_trace_id() -> String {
    trace_id_of(&tracing::Span::current())
}

/// The trace id of a span, or empty.
pub fn trace_id_of(span: &tracing::Span) -> String {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The remote trace context of an incoming request (`traceparent`, `tracestate`).
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MetadataInjector(metadata)));
}

/// The trace id in a remote context, or empty.
pub fn remote_trace_id(cx: &Context) -> String {
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}
