//! saener over HTTP: `POST /v1/annotate` and friends, a web page that shows each span's
//! evidence, Prometheus metrics and an OpenAPI document.
//!
//! One worker thread owns the model ([`Models`]) and takes requests from a bounded queue,
//! batching the documents of requests that arrive within a few milliseconds of each other
//! into one forward pass (concurrent clients share the batch throughput of the CLI). A full
//! queue answers 503 with `Retry-After` instead of growing; every error is JSON
//! (`{"error":{"code","message"}}`). [`Server::serve`] stops on a signal after finishing
//! the requests in flight.

mod api;
mod engine;
mod metrics;
mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use saener_lm::gemma3::Gemma3;
use saener_lm::Tokenizer;
use saener_ner::Profile;
use saener_sae::Sae;

pub use api::ApiDoc;

/// The model, the SAE and the profiles the server annotates with.
pub struct Models {
    pub tokenizer: Tokenizer,
    pub model: Gemma3,
    pub sae: Sae,
    /// The SAE's layer; the model must run at least to it.
    pub layer: usize,
    /// SHA-256 of the model file (what profiles record as their model).
    pub model_id: String,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// By name; the first is the default of requests that name none.
    pub profiles: Vec<(String, Profile)>,
}

impl Models {
    /// Errors unless there is a profile and every profile fits this model, layer and SAE.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.profiles.is_empty(), "no profile to serve");
        for (name, profile) in &self.profiles {
            profile
                .check_compatible(&self.model_id, self.layer, self.sae.id())
                .with_context(|| format!("profile {name}"))?;
        }
        Ok(())
    }

    fn profile(&self, name: Option<&str>) -> Option<(usize, &str, &Profile)> {
        match name {
            None => Some(0),
            Some(name) => self.profiles.iter().position(|(n, _)| n == name),
        }
        .map(|i| (i, self.profiles[i].0.as_str(), &self.profiles[i].1))
    }
}

/// Request limits and batching; [`Limits::default`] holds the documented defaults.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most documents per request (413 above it).
    pub max_documents: usize,
    /// Most characters (code points) per document (413 above it); longer inputs than the
    /// model's window are windowed, not refused.
    pub max_chars: usize,
    /// Time from arrival to answer, queueing included (504 after it).
    pub timeout: Duration,
    /// Requests waiting for the model at most (503 with `Retry-After` beyond).
    pub queue_capacity: usize,
    /// How long the worker waits for more requests to join a batch.
    pub batch_wait: Duration,
    /// Most documents in one batch.
    pub max_batch_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_documents: 64,
            max_chars: 100_000,
            timeout: Duration::from_secs(60),
            queue_capacity: 64,
            batch_wait: Duration::from_millis(5),
            max_batch_documents: 64,
        }
    }
}

/// A ready server: the worker thread is running and the routes are built.
pub struct Server {
    router: axum::Router,
    worker: std::thread::JoinHandle<()>,
}

impl Server {
    /// Starts the model worker (preparing every profile) and builds the routes. Servers
    /// may share one [`Models`].
    pub fn new(models: Arc<Models>, limits: Limits) -> anyhow::Result<Server> {
        models.check()?;
        let metrics = Arc::new(metrics::Metrics::new());
        let (engine, worker) = engine::Engine::start(models.clone(), limits, metrics.clone())?;
        let router = api::router(api::AppState {
            engine,
            models,
            limits,
            metrics,
        });
        Ok(Server { router, worker })
    }

    /// The routes (for serving elsewhere or calling in tests); the worker stops once every
    /// copy is dropped.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then finishes the requests in
    /// flight, lets the worker drain its queue, and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server { router, worker } = self;
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        // Every route (and with it the queue's sender) is dropped now, so the worker ends.
        tokio::task::spawn_blocking(move || worker.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the model worker panicked"))
    }
}

/// Completes on Ctrl-C or SIGTERM: the usual reasons to stop a server.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
