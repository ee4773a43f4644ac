//! `GET|POST /v1/events/impression`, `GET /v1/events/click` and
//! `POST /v1/events/purchase`: public, authorised by the sealed token in `t`.

use super::codec::{Body, Codec, empty, read_body};
use super::error::ApiError;
use crate::app::App;
use crate::purchase::{self, PurchaseError};
use crate::token::TokenError;
use crate::tracking::{self, EventError};
use crate::validation::{Detail, Problems, Reader, expect_integer};
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::Duration;

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

/// Why the HTTP layer finds an event request invalid: a known bot, or one request too
/// many from its address.
fn flagged(app: &App, req: &Request<Incoming>) -> Option<&'static str> {
    if crate::traffic::is_bot(req.headers()) {
        Some("bot_user_agent")
    } else if !app.within_rate(req) {
        Some("rate_limited")
    } else {
        None
    }
}

pub async fn impression(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let t = token(&req)?;
    let flag = flagged(app, &req);
    tracking::impression(app, &t, flag)
        .await
        .map_err(event_error)?;
    Ok(no_store(empty(StatusCode::NO_CONTENT)))
}

pub async fn click(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let t = token(&req)?;
    let flag = flagged(app, &req);
    let (payload, _) = tracking::click(app, &t, flag).await.map_err(event_error)?;
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

/// `POST /v1/events/purchase?t=TOKEN` with `{"quantity": N}` (default 1).
pub async fn purchase(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let t = token(&req)?;
    let (parts, body) = req.into_parts();
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms);
    let bytes = read_body(body, &parts.headers, app.config.max_body_bytes, deadline).await?;
    let max = app.config.max_purchase_quantity;
    let quantity = if bytes.iter().all(u8::is_ascii_whitespace) {
        1
    } else {
        let value: serde_json::Value = codec.decode(&bytes)?;
        let mut p = Problems::default();
        let quantity = Reader::object(&value, "", &mut p).and_then(|mut r| {
            let q = r.raw("quantity").map_or(Some(1), |v| {
                expect_integer(v, "quantity", 1..=i64::from(max), &mut p)
            });
            r.finish(&mut p);
            q
        });
        match quantity {
            Some(q) if p.is_empty() => q as u32,
            _ => return Err(ApiError::invalid(p.0)),
        }
    };
    let order = purchase::buy(app, &t, quantity).await.map_err(|e| {
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, e.to_string());
        match &e {
            PurchaseError::Token(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "the tracking token is not valid",
            )
            .with_details(vec![Detail::new("t", e.to_string())]),
            PurchaseError::NotAProduct => conflict("not_purchasable"),
            PurchaseError::Expired => conflict("offer_expired"),
            PurchaseError::AlreadyPurchased => conflict("already_purchased"),
            PurchaseError::OutOfStock { .. } => conflict("out_of_stock"),
            PurchaseError::Log(l) => ApiError::unavailable(format!("{l}; nothing was bought")),
            PurchaseError::StockUnavailable => {
                ApiError::unavailable(format!("{e}; nothing was bought, retry later"))
            }
        }
    })?;
    Ok(no_store(
        Codec::of_response(&parts.headers).encode(StatusCode::CREATED, &order),
    ))
}
