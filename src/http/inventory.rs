//! `PUT /v1/inventory` (ingest or admin) and `GET /v1/inventory/{sku}`.

use super::auth::require;
use super::codec::{Body, Codec};
use super::error::ApiError;
use super::manage::read_value;
use crate::access::Role;
use crate::app::App;
use crate::inventory::parse_feed;
use chrono::DateTime;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

pub async fn put(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require(app, &parts.headers, &[Role::Ingest])?;
    let value = read_value(app, &parts, body, app.config.max_batch_body_bytes).await?;
    let updates = parse_feed(&value, app.clock.now_ms()).map_err(|p| ApiError::invalid(p.0))?;
    let inventory = app.inventory.clone();
    let lines = updates.len();
    #[cfg(feature = "redis")]
    let shared = if app.fleet.get().is_some() {
        updates.clone()
    } else {
        Vec::new()
    };
    let updated = tokio::task::spawn_blocking(move || inventory.report(&updates))
        .await
        .map_err(|_| ApiError::unavailable("inventory task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot write the inventory journal");
            ApiError::unavailable("the stock could not be saved; nothing was changed, retry later")
        })?;
    // A fleet sells from the shared levels: the feed sets them too (same rule: only a
    // newer report applies, and sales after its `as_of` stay subtracted).
    #[cfg(feature = "redis")]
    let updated = match app.fleet.get() {
        Some(fleet) => fleet.stock.report(&shared).await.map_err(|e| {
            tracing::error!(error = %e, "cannot share the stock feed");
            ApiError::unavailable(
                "the stock was saved on this node but could not be shared with the fleet; retry the same feed",
            )
        })?,
        None => updated,
    };
    #[derive(Serialize)]
    struct Updated {
        updated: usize,
        /// Lines older than what was already applied for their SKU and location.
        ignored: usize,
    }
    Ok(Codec::of_response(&parts.headers).encode(
        StatusCode::OK,
        &Updated {
            updated,
            ignored: lines - updated,
        },
    ))
}

pub async fn get(app: &App, req: Request<Incoming>, sku: &str) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[Role::Ingest, Role::Measurement])?;
    let locations = app
        .inventory
        .by_location(sku)
        .ok_or_else(ApiError::not_found)?;
    #[derive(Serialize)]
    struct Location {
        location: String,
        quantity: i64,
        as_of: String,
    }
    #[derive(Serialize)]
    struct Stock<'a> {
        sku: &'a str,
        locations: Vec<Location>,
    }
    let stock = Stock {
        sku,
        locations: locations
            .into_iter()
            .map(|(location, quantity, as_of)| Location {
                location,
                quantity,
                as_of: DateTime::from_timestamp_millis(as_of)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
            })
            .collect(),
    };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &stock))
}
