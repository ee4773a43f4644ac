//! The campaigns API: `PUT|GET|DELETE /v1/campaigns/{id}`, `GET /v1/campaigns`,
//! `POST /v1/campaigns/batch`. Admin keys manage every campaign, advertiser keys their
//! own; the work is done by [`crate::catalog`].

use super::auth::require;
use super::codec::{Body, Codec, empty};
use super::error::ApiError;
use super::manage::read_value;
use crate::access::{Principal, Role};
use crate::app::App;
use crate::campaign::Campaign;
use crate::catalog::{self, Applied, CatalogError, MAX_BATCH};
use crate::validation::{Detail, index, is_valid_id};
use http::header::ETAG;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

/// Campaigns per page of `GET /v1/campaigns` unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 1_000;

fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::Invalid(details) => ApiError::invalid(details),
        CatalogError::Forbidden(detail) => ApiError::forbidden(detail),
        CatalogError::NotFound => ApiError::not_found(),
        CatalogError::Unavailable(message) => ApiError::unavailable(message),
    }
}

fn check_path_id(id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(vec![Detail::new(
            "id",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-', and not '.' or '..'",
        )]))
    }
}

pub async fn put(app: &App, req: Request<Incoming>, id: &str) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let who = require(app, &parts.headers, &[Role::Advertiser])?;
    check_path_id(id)?;
    let value = read_value(app, &parts, body, app.config.max_body_bytes).await?;
    let applied = catalog::upsert(app, &who, vec![(String::new(), value)], Some(id))
        .await
        .map_err(catalog_error)?;
    let a = &applied[0];
    let status = if a.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_version(
        Codec::of_response(&parts.headers).encode(status, a),
        a.version,
    ))
}

pub async fn batch(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let who = require(app, &parts.headers, &[Role::Advertiser])?;
    let value = read_value(app, &parts, body, app.config.max_batch_body_bytes).await?;
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(vec![Detail::new(
            "",
            "expected an array of campaign documents",
        )]));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(vec![Detail::new(
            "",
            format!("a batch holds 1 to {MAX_BATCH} campaigns"),
        )]));
    }
    let documents = (items.into_iter().enumerate())
        .map(|(i, v)| (index("", i), v))
        .collect();
    let applied = catalog::upsert(app, &who, documents, None)
        .await
        .map_err(catalog_error)?;
    #[derive(Serialize)]
    struct Batch {
        campaigns: Vec<Applied>,
        created: usize,
        replaced: usize,
        unchanged: usize,
    }
    let created = applied.iter().filter(|a| a.created).count();
    let unchanged = applied.iter().filter(|a| a.unchanged).count();
    let body = Batch {
        replaced: applied.len() - created - unchanged,
        created,
        unchanged,
        campaigns: applied,
    };
    Ok(Codec::of_response(&parts.headers).encode(StatusCode::OK, &body))
}

/// The campaign `id` if the caller may see it.
fn visible(app: &App, who: &Principal, id: &str) -> Result<std::sync::Arc<Campaign>, ApiError> {
    let snap = app.snapshot.load();
    let c = snap.by_id(id).ok_or_else(ApiError::not_found)?;
    if !who.manages(&c.advertiser) {
        return Err(ApiError::forbidden(Detail::new(
            "id",
            "belongs to another advertiser",
        )));
    }
    Ok(c.doc.clone())
}

pub async fn get_one(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let who = require(app, req.headers(), &[Role::Advertiser])?;
    let doc = visible(app, &who, id)?;
    let version = app.ledger.campaign_version(id).map_or(0, |v| v.version);
    Ok(with_version(
        Codec::of_response(req.headers()).encode(StatusCode::OK, &*doc),
        version,
    ))
}

pub async fn list(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let who = require(app, req.headers(), &[Role::Advertiser])?;
    let query = req.uri().query().unwrap_or("");
    let mut limit = DEFAULT_PAGE;
    let mut after = None;
    for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
        match k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_BATCH).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(vec![Detail::new(
                            "limit",
                            format!("must be an integer from 1 to {MAX_BATCH}"),
                        )])
                    })?
            }
            "after" => after = Some(v.to_string()),
            _ => {}
        }
    }
    let snap = app.snapshot.load();
    let mut mine: Vec<&std::sync::Arc<Campaign>> = snap
        .campaigns()
        .filter(|c| who.manages(&c.advertiser))
        .filter(|c| after.as_deref().is_none_or(|a| *c.id > *a))
        .map(|c| &c.doc)
        .collect();
    mine.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let more = mine.len() > limit;
    mine.truncate(limit);
    #[derive(Serialize)]
    struct Page<'a> {
        campaigns: Vec<&'a Campaign>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<&'a str>,
    }
    let page = Page {
        next: more.then(|| mine.last().map(|c| c.id.as_str())).flatten(),
        campaigns: mine.iter().map(|c| &***c).collect(),
    };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &page))
}

pub async fn delete(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let who = require(app, req.headers(), &[Role::Advertiser])?;
    catalog::delete(app, &who, id)
        .await
        .map_err(catalog_error)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn with_version(mut r: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(ETAG, v);
    }
    r
}

/// `GET /v1/campaigns/{id}/stats`: live delivery of one campaign.
pub async fn stats(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let who = require(app, req.headers(), &[Role::Advertiser, Role::Measurement])?;
    let snap = app.snapshot.load();
    let c = snap.by_id(id).ok_or_else(ApiError::not_found)?;
    if who.role == Role::Advertiser && !who.manages(&c.advertiser) {
        return Err(ApiError::forbidden(Detail::new(
            "id",
            "belongs to another advertiser",
        )));
    }
    let now = app.clock.now_ms();
    let body = crate::delivery::stats::of(app, c, now);
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &body))
}
