//! `GET|POST /v1/events/impression` and `GET /v1/events/click`: public, authorised by
//! the sealed token in `t`.

use super::codec::{Body, empty};
use super::error::ApiError;
use crate::app::App;
use crate::token::TokenError;
use crate::tracking::{self, EventError};
use crate::validation::Detail;
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

/// The `t` query parameter.
fn token(req: &Request<Incoming>) -> Result<String, ApiError> {
    let query = req.uri().query().unwrap_or("");
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("t=") {
            return Ok(v.to_string());
        }
    }
    Err(ApiError::invalid(vec![Detail::new(
        "t",
        "the tracking token is required",
    )]))
}

fn event_error(e: EventError) -> ApiError {
    match e {
        EventError::Token(TokenError::Malformed) | EventError::Token(TokenError::Forged) => {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "the tracking token is not valid",
            )
            .with_details(vec![Detail::new("t", e.to_string())])
        }
        EventError::Log(e) => ApiError::unavailable(e.to_string()),
    }
}

/// Beacons must never be cached by a browser or proxy, or repeats would not reach us.
fn no_store(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn impression(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let t = token(&req)?;
    tracking::impression(app, &t).await.map_err(event_error)?;
    Ok(no_store(empty(StatusCode::NO_CONTENT)))
}

pub async fn click(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let t = token(&req)?;
    let (payload, _) = tracking::click(app, &t).await.map_err(event_error)?;
    let snap = app.snapshot.load();
    let url = snap
        .by_id(&payload.campaign)
        .and_then(|c| c.creatives.iter().find(|cr| *cr.id == *payload.creative))
        .map(|cr| cr.doc.click_url.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this offer is no longer available",
            )
        })?;
    let location = HeaderValue::from_str(&url).map_err(|_| ApiError::not_found())?;
    let mut r = empty(StatusCode::FOUND);
    r.headers_mut().insert(LOCATION, location);
    Ok(no_store(r))
}
