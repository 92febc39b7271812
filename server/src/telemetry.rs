//! Logging and Lookout's own traces. Logs go to stderr, so stdout carries only what a
//! subcommand prints for scripts (a new token, the first admin's password). Logs are text by default, JSON with
//! LOOKOUT_LOG_FORMAT=json. Traces go over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT
//! is set; otherwise no exporter exists and spans cost only what `tracing` costs.

use crate::config::{Config, LogFormat};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace exporter alive; flushes it on drop.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("lookout: flushing traces failed: {e}");
        }
    }
}

fn otlp_traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

pub fn init(config: &Config) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| format!("LOOKOUT_LOG: invalid filter {:?}: {e}", config.log_filter))?;

    let provider = match config.otlp_endpoint.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(endpoint) => {
            url::Url::parse(endpoint).map_err(|e| {
                format!("OTEL_EXPORTER_OTLP_ENDPOINT: not a URL ({endpoint:?}): {e}")
            })?;
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(otlp_traces_url(endpoint))
                .build()
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build exporter: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name("lookout")
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };

    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("lookout"))
            .boxed()
    });
    let fmt_layer = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| format!("logging already initialised: {e}"))?;
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::otlp_traces_url;

    #[test]
    fn traces_path_is_appended_once() {
        assert_eq!(otlp_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(otlp_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            otlp_traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
