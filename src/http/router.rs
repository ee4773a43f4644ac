//! Which handler answers which method and path.

use super::codec::{Body, Codec};
use super::error::ApiError;
use super::{admin, conversions, decisions, events, log};
use crate::app::App;
use http::{Method, Request, Response};
use hyper::body::Incoming;

/// Answers one request; every error becomes its JSON (or MessagePack) error body.
pub async fn route(app: &App, req: Request<Incoming>) -> Response<Body> {
    let codec = Codec::of_response(req.headers());
    let route = req.uri().path().to_string();
    let result = dispatch(app, req).await;
    let response = result.unwrap_or_else(|e| codec.error(&e));
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    app.metrics
        .http_requests
        .with_label_values(&[route_label(&route), class])
        .inc();
    response
}

/// A bounded label: known routes by name, everything else as "other".
fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/decisions" => "decisions",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/v1/events/impression" => "impression",
        "/v1/events/click" => "click",
        "/v1/conversions" => "conversions",
        "/v1/log" => "log",
        _ => "other",
    }
}

async fn dispatch(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    match (req.uri().path(), method) {
        ("/v1/decisions", Method::POST) => decisions::post(app, req).await,
        ("/v1/events/impression", Method::GET | Method::POST) => events::impression(app, req).await,
        ("/v1/events/click", Method::GET) => events::click(app, req).await,
        ("/v1/conversions", Method::POST) => conversions::post(app, req).await,
        ("/v1/log", Method::GET) => log::get(app, req).await,
        ("/healthz", Method::GET | Method::HEAD) => Ok(admin::healthz()),
        ("/readyz", Method::GET | Method::HEAD) => Ok(admin::readyz(app)),
        ("/metrics", Method::GET) => Ok(admin::metrics(app)),
        ("/v1/decisions" | "/healthz" | "/readyz" | "/metrics", _) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::not_found()),
    }
}
