//! The accept loop. `axum::serve` sets no header read timeout, caps no connections and
//! waits for stalled clients forever at shutdown, so connections are served here with
//! hyper directly: headers must arrive within [`Limits::read_timeout`], at most
//! [`Limits::max_connections`] are served at once, and shutdown waits at most
//! [`Limits::timeout`] for the requests in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::Limits;

/// A pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) async fn connections(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropping the sender asks every connection to finish its request and close.
    let (stopping, stop) = watch::channel(());
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow with the server's lifetime.
        while tasks.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small JSON answers should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let mut stop = stop.clone();
        tasks.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    drop(stopping);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.timeout, drained).await.is_err() {
        // Past every request's own deadline: whoever is still connected is stalled.
        tasks.shutdown().await;
    }
}
