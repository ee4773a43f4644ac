//! Operational routes: liveness, readiness and metrics.

use super::codec::{Body, with_type};
use crate::app::App;
use bytes::Bytes;
use http::{Response, StatusCode};

/// 200 while the process runs.
pub fn healthz() -> Response<Body> {
    with_type(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n"))
}

/// 200 once campaigns are loaded and the data folder is writable, else 503, so a load
/// balancer sends no traffic to a node that would answer with nothing. On a fleet, a
/// second line says whether the exposure log reaches the shared stream; a node whose
/// stream is unreachable stays ready, since it serves correctly and spools locally.
pub fn readyz(app: &App) -> Response<Body> {
    if app.is_ready() {
        let body = match app.log.replica_status() {
            None => Bytes::from_static(b"ready\n"),
            Some((true, behind)) => Bytes::from(format!(
                "ready\nstream: forwarding, {behind} bytes behind\n"
            )),
            Some((false, behind)) => Bytes::from(format!(
                "ready\nstream: unreachable, {behind} bytes waiting in the local log\n"
            )),
        };
        with_type(StatusCode::OK, "text/plain", body)
    } else {
        with_type(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"not ready\n"),
        )
    }
}

pub fn metrics(app: &App) -> Response<Body> {
    with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(app.metrics.render()),
    )
}
