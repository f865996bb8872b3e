//! saener over HTTP: `POST /v1/annotate` and friends, a web page that shows each span's
//! evidence, Prometheus metrics and an OpenAPI document.
//!
//! One worker thread annotates with a [`saener_ner::Pipeline`] (loaded and checked by the
//! library, as the CLI's and the Python package's are) and takes requests from a bounded
//! queue, batching the documents of requests that arrive within a few milliseconds of each
//! other into one forward pass (concurrent clients share the batch throughput of the CLI). A full
//! queue answers 503 with `Retry-After` instead of growing; every error is JSON
//! (`{"error":{"code","message"}}`). [`Server::serve`] stops on a signal after finishing
//! the requests in flight, within the request timeout.
//!
//! Every resource a client controls is bounded: header and body reading time
//! ([`Limits::read_timeout`]), the whole request's time ([`Limits::timeout`], after which its
//! model work is dropped at the next piece), connections, body size, documents and their
//! length, and the `/metrics` series (labels take only known values).

mod access;
mod api;
mod engine;
mod metrics;
mod serve;
mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use saener_ner::Pipeline;

pub use access::Access;
pub use api::ApiDoc;

/// Why a server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("preparing the profiles to serve: {0}")]
    Prepare(#[source] saener_ner::PipelineError),
    #[error("starting the model worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the model worker stopped while starting")]
    WorkerStopped,
    #[error("the model worker panicked")]
    WorkerPanicked,
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
    /// Time from a request's arrival (its headers read) to its answer: reading the body,
    /// waiting in the queue and the model's work (504 after it; the work left is dropped).
    pub timeout: Duration,
    /// Time to read a request's headers (the connection is closed after it, idle keep-alive
    /// connections too) and, separately, its body (408 after it).
    pub read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Text is handed to the model at most this many bytes at a time: longer documents in
    /// pieces (the CLI's [`saener_ner::PIECE_BYTES`], so both give the same spans), shorter
    /// ones in batches of about this much. Work for a request that gave up stops at the next
    /// such step.
    pub piece_bytes: usize,
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
            // A document of `max_chars` took 46-54 s on 2 idle cores (issue 26): over twice
            // that, so the largest document fits with margin (BENCHMARKS.md, "Serving: the
            // longest document").
            timeout: Duration::from_secs(120),
            read_timeout: Duration::from_secs(10),
            max_connections: 512,
            piece_bytes: saener_ner::PIECE_BYTES,
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
    limits: Limits,
}

impl Server {
    /// Starts the model worker (preparing every profile of `pipeline`, which checked them
    /// against its model and SAE when it loaded) and builds the routes, open to every
    /// client (see [`Server::with_access`]). Servers may share one pipeline.
    pub fn new(pipeline: Arc<Pipeline>, limits: Limits) -> Result<Server, ServerError> {
        Server::with_access(pipeline, limits, Access::default())
    }

    /// [`Server::new`] with a bearer token and/or a list of accepted `Host` names.
    pub fn with_access(
        pipeline: Arc<Pipeline>,
        limits: Limits,
        access: Access,
    ) -> Result<Server, ServerError> {
        let metrics = Arc::new(metrics::Metrics::new());
        let (engine, worker) = engine::Engine::start(pipeline.clone(), limits, metrics.clone())?;
        let router = api::router(api::AppState {
            engine,
            pipeline,
            limits,
            metrics,
            access: Arc::new(access),
        });
        Ok(Server {
            router,
            worker,
            limits,
        })
    }

    /// The routes (for serving elsewhere or calling in tests); the worker stops once every
    /// copy is dropped. Header read timeouts and the connection limit are [`Server::serve`]'s.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets the
    /// requests in flight finish (for at most [`Limits::timeout`], the longest any request
    /// may take; connections still open then are dropped), lets the worker finish, and
    /// returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            router,
            worker,
            limits,
        } = self;
        serve::connections(listener, router, limits, shutdown).await;
        // Every route (and with it the queue's sender) is dropped now, so the worker ends
        // once it has dropped the work nobody waits for.
        match tokio::task::spawn_blocking(move || worker.join()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(ServerError::WorkerPanicked),
        }
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
