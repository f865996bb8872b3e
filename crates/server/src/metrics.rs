//! Prometheus metrics: requests by route and status, latency, documents and tokens
//! annotated, queue depth and batch sizes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: HistogramFamily,
    pub documents: Counter,
    pub tokens: Counter,
    pub queue_depth: Gauge,
    pub batch_documents: Histogram,
}

fn latency_histogram() -> Histogram {
    // 2.5 ms to ~80 s.
    Histogram::new(exponential_buckets(0.0025, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("saener");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let documents = Counter::default();
        let tokens = Counter::default();
        let queue_depth = Gauge::default();
        let batch_documents = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response, by route",
            latency.clone(),
        );
        registry.register("documents", "Documents annotated", documents.clone());
        registry.register(
            "tokens",
            "Tokens read by the model (BOS included)",
            tokens.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for the model",
            queue_depth.clone(),
        );
        registry.register(
            "batch_documents",
            "Documents per model batch",
            batch_documents.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            documents,
            tokens,
            queue_depth,
            batch_documents,
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
