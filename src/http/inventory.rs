//! `PUT /v1/inventory` (ingest or admin) and `GET /v1/inventory/{sku}`.

use super::auth::require;
use super::codec::{Body, Codec};
use super::error::ApiError;
use super::manage::read_value;
use crate::access::Role;
use crate::app::App;
use crate::inventory::StockUpdate;
use crate::validation::{Problems, Reader, expect_integer, index};
use chrono::DateTime;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

/// The most lines one feed request may carry.
pub const MAX_LINES: usize = 100_000;
/// The longest SKU or location.
const MAX_KEY: usize = 128;
/// How far ahead of this server's clock an `as_of` may be (clock skew).
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

fn parse(value: &Value, now_ms: i64) -> Result<Vec<StockUpdate>, Problems> {
    let mut p = Problems::default();
    let Value::Array(lines) = value else {
        p.push("", "expected an array of stock lines");
        return Err(p);
    };
    if lines.is_empty() || lines.len() > MAX_LINES {
        p.push("", format!("a feed holds 1 to {MAX_LINES} lines"));
        return Err(p);
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let path = index("", i);
        let Some(mut r) = Reader::object(line, &path, &mut p) else {
            continue;
        };
        let key = |r: &mut Reader, field: &'static str, p: &mut Problems| {
            let v = r.required_string(field, p)?;
            if v.is_empty() || v.len() > MAX_KEY {
                p.push(
                    r.field_path(field),
                    format!("must be 1 to {MAX_KEY} characters"),
                );
                return None;
            }
            Some(v.to_string())
        };
        let sku = key(&mut r, "sku", &mut p);
        let location = key(&mut r, "location", &mut p);
        let quantity = r
            .required("quantity", &mut p)
            .and_then(|v| expect_integer(v, &r.field_path("quantity"), 0..=1_000_000_000, &mut p));
        let as_of = match r.string("as_of", &mut p) {
            None => Some(now_ms),
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) if t.timestamp_millis() <= now_ms + MAX_FUTURE_MS => {
                    Some(t.timestamp_millis())
                }
                Ok(_) => {
                    p.push(r.field_path("as_of"), "is in the future");
                    None
                }
                Err(_) => {
                    p.push(r.field_path("as_of"), "expected an RFC 3339 timestamp");
                    None
                }
            },
        };
        r.finish(&mut p);
        if let (Some(sku), Some(location), Some(quantity), Some(as_of)) =
            (sku, location, quantity, as_of)
        {
            out.push(StockUpdate {
                sku,
                location,
                quantity,
                as_of,
            });
        }
    }
    if p.is_empty() { Ok(out) } else { Err(p) }
}

pub async fn put(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require(app, &parts.headers, &[Role::Ingest])?;
    let value = read_value(app, &parts, body, app.config.max_batch_body_bytes).await?;
    let updates = parse(&value, app.clock.now_ms()).map_err(|p| ApiError::invalid(p.0))?;
    let inventory = app.inventory.clone();
    let lines = updates.len();
    let updated = tokio::task::spawn_blocking(move || inventory.report(&updates))
        .await
        .map_err(|_| ApiError::unavailable("inventory task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot write the inventory journal");
            ApiError::unavailable("the stock could not be saved; nothing was changed, retry later")
        })?;
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
