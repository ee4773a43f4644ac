//! Advertisers and keys (admin only): `POST|GET /v1/advertisers`, `POST|GET /v1/keys`,
//! `DELETE /v1/keys/{id}`.

use super::auth::require;
use super::codec::{Body, Codec, empty, read_body};
use super::error::ApiError;
use crate::access::{AccessError, Advertiser, Role};
use crate::app::App;
use crate::validation::{Detail, Problems, Reader, check_id};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// The longest advertiser name or competitive category.
const MAX_NAME: usize = 200;

/// Reads a JSON or MessagePack body into a value, under the normal body limit.
pub async fn read_value(
    app: &App,
    parts: &http::request::Parts,
    body: Incoming,
    limit: usize,
) -> Result<Value, ApiError> {
    let codec = Codec::of_request(&parts.headers)?;
    let deadline = Duration::from_millis(app.config.header_read_timeout_ms.max(30_000));
    let bytes = read_body(body, &parts.headers, limit, deadline).await?;
    codec.decode(&bytes)
}

fn access_error(e: AccessError) -> ApiError {
    match e {
        AccessError::AdvertiserExists(_) => {
            ApiError::new(StatusCode::CONFLICT, "advertiser_exists", e.to_string())
                .with_details(vec![Detail::new("id", e.to_string())])
        }
        AccessError::NoSuchAdvertiser(_) => {
            ApiError::invalid(vec![Detail::new("advertiser", e.to_string())])
        }
        AccessError::Io { .. } => {
            tracing::error!(error = %e, "cannot persist keys");
            ApiError::unavailable("the keys could not be saved; nothing was changed")
        }
    }
}

/// Runs a blocking change to the keys off the async workers (it fsyncs).
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&crate::access::Access) -> Result<T, AccessError> + Send + 'static,
) -> Result<T, ApiError> {
    let access = app.access.clone();
    tokio::task::spawn_blocking(move || f(&access))
        .await
        .map_err(|_| ApiError::unavailable("key store task failed"))?
        .map_err(access_error)
}

#[derive(Serialize)]
struct Created {
    id: String,
    api_key: String,
}

pub async fn create_advertiser(
    app: &App,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require(app, &parts.headers, &[])?;
    let value = read_value(app, &parts, body, app.config.max_body_bytes).await?;
    let mut p = Problems::default();
    let advertiser = (|| {
        let mut r = Reader::object(&value, "", &mut p)?;
        let id = r.required_string("id", &mut p);
        let name = r.required_string("name", &mut p);
        let category = r.string("competitive_category", &mut p);
        r.finish(&mut p);
        let id = id.filter(|id| check_id(id, "id", &mut p))?;
        for (field, v) in [("name", name), ("competitive_category", category)] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.len() > MAX_NAME)
            {
                p.push(field, format!("must be 1 to {MAX_NAME} characters"));
            }
        }
        Some(Advertiser {
            id: id.to_string(),
            name: name?.to_string(),
            competitive_category: category.map(|c| c.trim().to_lowercase()),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    })();
    let advertiser = match advertiser {
        Some(a) if p.is_empty() => a,
        _ => return Err(ApiError::invalid(p.0)),
    };
    let id = advertiser.id.clone();
    let key = blocking(app, move |a| a.create_advertiser(advertiser)).await?;
    // Campaigns already loaded for this advertiser take its competitive category.
    let _writer = app.catalog_lock.lock().await;
    let theirs: Vec<_> = app
        .snapshot
        .load()
        .campaigns()
        .filter(|c| *c.advertiser == *id)
        .map(|c| crate::catalog::compile(app, crate::campaign::Campaign::clone(&c.doc)))
        .collect();
    if !theirs.is_empty() {
        app.publisher.publish(theirs, Vec::new());
    }
    let codec = Codec::of_response(&parts.headers);
    Ok(codec.encode(
        StatusCode::CREATED,
        &Created {
            id,
            api_key: key.key,
        },
    ))
}

pub async fn list_advertisers(
    app: &App,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[])?;
    #[derive(Serialize)]
    struct List {
        advertisers: Vec<Advertiser>,
    }
    let list = List {
        advertisers: app.access.advertisers(),
    };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &list))
}

pub async fn create_key(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require(app, &parts.headers, &[])?;
    let value = read_value(app, &parts, body, app.config.max_body_bytes).await?;
    let mut p = Problems::default();
    let parsed = (|| {
        let mut r = Reader::object(&value, "", &mut p)?;
        let role = r.required_string("role", &mut p);
        let advertiser = r.string("advertiser", &mut p);
        r.finish(&mut p);
        let role = match role.map(|s| (s, Role::parse(s))) {
            Some((_, Some(role))) if role != Role::Admin => role,
            Some(_) => {
                p.push(
                    "role",
                    "must be \"advertiser\", \"ingest\" or \"measurement\"",
                );
                return None;
            }
            None => return None,
        };
        match (role, advertiser) {
            (Role::Advertiser, None) => {
                p.push("advertiser", "is required for an advertiser key");
                None
            }
            (Role::Advertiser, Some(a)) => Some((role, Some(a.to_string()))),
            (_, Some(_)) => {
                p.push("advertiser", "only advertiser keys belong to an advertiser");
                None
            }
            (_, None) => Some((role, None)),
        }
    })();
    let (role, advertiser) = match parsed {
        Some(v) if p.is_empty() => v,
        _ => return Err(ApiError::invalid(p.0)),
    };
    let key = blocking(app, move |a| a.create_key(role, advertiser)).await?;
    Ok(Codec::of_response(&parts.headers).encode(StatusCode::CREATED, &key))
}

pub async fn list_keys(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[])?;
    #[derive(Serialize)]
    struct List {
        keys: Vec<crate::access::KeyInfo>,
    }
    let list = List {
        keys: app.access.keys(),
    };
    Ok(Codec::of_response(req.headers()).encode(StatusCode::OK, &list))
}

pub async fn revoke_key(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    require(app, req.headers(), &[])?;
    let owned = id.to_string();
    if blocking(app, move |a| a.revoke(&owned)).await? {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::not_found())
    }
}
