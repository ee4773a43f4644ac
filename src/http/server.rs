//! The accept loop and the life of one connection.
//!
//! Slow or idle clients must not hold the server: a connection cap (a semaphore;
//! beyond it new connections are closed at once), hyper's header read timeout against
//! slowloris, a body deadline in the codec, and an idle timeout between keep-alive
//! requests enforced here. On shutdown the listener is dropped first, every connection
//! is told to finish its in-flight request and close, and the wait is bounded.

use super::router::route;
use crate::app::App;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

/// Serves HTTP on an already bound listener until `shutdown` resolves, then drains
/// in-flight requests for at most the configured grace period.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(app.config.max_connections));
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    app.metrics.connections_refused.with_label_values(&["connection_cap"]).inc();
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let stop = stop_rx.clone();
                tracker.spawn(async move {
                    app.metrics.connections_open.inc();
                    serve_connection(stream, peer, app.clone(), stop).await;
                    app.metrics.connections_open.dec();
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    let grace = Duration::from_millis(app.config.shutdown_grace_ms);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            grace_ms = app.config.shutdown_grace_ms,
            "connections still open after the grace period; closing them"
        );
    }
    Ok(())
}

/// When the connection last started or finished a request, and how many are running.
struct Activity {
    epoch: Instant,
    last_ms: AtomicI64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as i64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let idle = self.epoch.elapsed().as_millis() as i64 - self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(idle.max(0) as u64))
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        epoch: Instant::now(),
        last_ms: AtomicI64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let service = {
        let app = app.clone();
        let activity = activity.clone();
        service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let app = app.clone();
            let activity = activity.clone();
            req.extensions_mut().insert(crate::traffic::Peer(peer));
            async move {
                activity.in_flight.fetch_add(1, Ordering::Relaxed);
                activity.touch();
                let response = route(&app, req).await;
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                activity.touch();
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(app.config.header_read_timeout_ms))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);

    let idle_limit = Duration::from_millis(app.config.idle_timeout_ms);
    let check_every = (idle_limit / 4).max(Duration::from_millis(10));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                // Finish the request in flight (if any), then close.
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(check_every), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_limit) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
