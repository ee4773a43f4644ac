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
/// balancer sends no traffic to a node that would answer with nothing.
pub fn readyz(app: &App) -> Response<Body> {
    if app.is_ready() {
        with_type(StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n"))
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
