//! Which handler answers which method and path.

use super::codec::{Body, Codec};
use super::cors::Cors;
use super::error::ApiError;
use super::{
    admin, campaigns, conversions, decisions, events, inventory, kevel, log, manage, profiles,
    reports, sdk,
};
use crate::app::App;
use http::{Method, Request, Response};
use hyper::body::Incoming;

/// Answers one request; every error becomes its JSON (or MessagePack) error body.
pub async fn route(app: &App, req: Request<Incoming>) -> Response<Body> {
    let codec = Codec::of_response(req.headers());
    let route = req.uri().path().to_string();
    let cors = Cors::of(&app.config.cors_allowed_origins, &route, req.headers());
    let result = match cors.options(req.method(), req.headers()) {
        Some(answer) => Ok(answer),
        None => match cors.denied_preflight(req.method()) {
            Some(e) => Err(e),
            None => dispatch(app, req).await,
        },
    };
    let mut response = result.unwrap_or_else(|e| codec.error(&e));
    cors.apply(&mut response);
    // Tell well-behaved clients when to come back: soon after a rate limit, a little
    // later when the server is busy or not ready.
    let retry_after = match response.status() {
        http::StatusCode::TOO_MANY_REQUESTS => Some("1"),
        http::StatusCode::SERVICE_UNAVAILABLE => Some("5"),
        _ => None,
    };
    if let Some(secs) = retry_after {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(secs),
        );
    }
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    match (route_label(&route), class) {
        ("decisions", "2xx") => app.metrics.hot.decisions_2xx.inc(),
        (label, class) => app
            .metrics
            .http_requests
            .with_label_values(&[label, class])
            .inc(),
    }
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
        "/v1/events/purchase" => "purchase",
        "/v1/inventory" => "inventory",
        "/v1/advertisers" => "advertisers",
        "/v1/keys" => "keys",
        "/v1/profiles" => "profiles",
        "/demo" => "demo",
        p if p.starts_with("/sdk/") => "sdk",
        "/v1/campaigns" | "/v1/campaigns/batch" => "campaigns",
        "/api/v2" => "kevel_decisions",
        p if p.starts_with("/udb/") => "kevel_userdb",
        p if p.starts_with("/v1/compat/kevel/ids/") => "kevel_ids",
        p if p.starts_with("/v1/campaigns/") && p.ends_with("/report") => "report",
        p if p.starts_with("/v1/campaigns/") => "campaign",
        p if p.starts_with("/v1/inventory/") => "inventory",
        p if p.starts_with("/v1/keys/") => "keys",
        _ => "other",
    }
}

async fn dispatch(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (path.as_str(), method) {
        ("/v1/decisions", Method::POST) => decisions::post(app, req).await,
        ("/v1/events/impression", Method::GET | Method::POST) => events::impression(app, req).await,
        ("/v1/events/click", Method::GET) => events::click(app, req).await,
        ("/v1/events/purchase", Method::POST) => events::purchase(app, req).await,
        ("/v1/conversions", Method::POST) => conversions::post(app, req).await,
        ("/v1/log", Method::GET) => log::get(app, req).await,
        ("/v1/advertisers", Method::POST) => manage::create_advertiser(app, req).await,
        ("/v1/advertisers", Method::GET) => manage::list_advertisers(app, req).await,
        ("/v1/keys", Method::POST) => manage::create_key(app, req).await,
        ("/v1/keys", Method::GET) => manage::list_keys(app, req).await,
        ("/v1/campaigns", Method::GET) => campaigns::list(app, req).await,
        ("/v1/campaigns/batch", Method::POST) => campaigns::batch(app, req).await,
        ("/v1/inventory", Method::PUT) => inventory::put(app, req).await,
        ("/v1/profiles", Method::GET) => profiles::get(app, req).await,
        ("/v1/profiles", Method::DELETE) => profiles::delete(app, req).await,
        ("/api/v2", Method::POST) => kevel::decisions(app, req).await,
        ("/healthz", Method::GET | Method::HEAD) => Ok(admin::healthz()),
        ("/readyz", Method::GET | Method::HEAD) => Ok(admin::readyz(app)),
        ("/metrics", Method::GET) => Ok(admin::metrics(app)),
        ("/demo", Method::GET | Method::HEAD) if app.config.demo => Ok(sdk::demo()),
        ("/sdk/v1.js", Method::GET | Method::HEAD) => Ok(sdk::v1(req.headers())),
        (
            "/v1/decisions"
            | "/healthz"
            | "/readyz"
            | "/metrics"
            | "/v1/events/impression"
            | "/v1/events/click"
            | "/v1/events/purchase"
            | "/v1/conversions"
            | "/v1/log"
            | "/v1/advertisers"
            | "/v1/keys"
            | "/v1/campaigns"
            | "/v1/campaigns/batch"
            | "/v1/inventory"
            | "/v1/profiles"
            | "/api/v2"
            | "/sdk/v1.js",
            _,
        ) => Err(ApiError::method_not_allowed()),
        (p, method) => {
            if let Some(id) = p
                .strip_suffix("/stats")
                .and_then(|rest| segment(rest, "/v1/campaigns/"))
            {
                match method {
                    Method::GET => campaigns::stats(app, req, &id).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(id) = p
                .strip_suffix("/report")
                .and_then(|rest| segment(rest, "/v1/campaigns/"))
            {
                match method {
                    Method::GET => reports::get(app, req, &id).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(id) = segment(p, "/v1/campaigns/") {
                match method {
                    Method::PUT => campaigns::put(app, req, &id).await,
                    Method::GET => campaigns::get_one(app, req, &id).await,
                    Method::DELETE => campaigns::delete(app, req, &id).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(id) = segment(p, "/v1/keys/") {
                match method {
                    Method::DELETE => manage::revoke_key(app, req, &id).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(sku) = segment(p, "/v1/inventory/") {
                match method {
                    Method::GET => inventory::get(app, req, &sku).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(n) = segment(p, "/v1/compat/kevel/ids/") {
                match method {
                    Method::GET => kevel::id(app, req, &n).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            } else if let Some(rest) = p.strip_prefix("/udb/") {
                // Kevel's UserDB: /udb/{networkId}, /udb/{networkId}/read and
                // /udb/{networkId}/consent. Its other calls (interests, segments, …)
                // have no counterpart here and are 404s.
                match (rest.split_once('/'), method) {
                    (None, Method::DELETE) => kevel::udb_forget(app, req, rest).await,
                    (Some((net, "read")), Method::GET) => kevel::udb_read(app, req, net).await,
                    (Some((net, "consent")), Method::POST) => {
                        kevel::udb_consent(app, req, net).await
                    }
                    (None | Some((_, "read" | "consent")), _) => {
                        Err(ApiError::method_not_allowed())
                    }
                    _ => Err(ApiError::not_found()),
                }
            } else {
                Err(ApiError::not_found())
            }
        }
    }
}

/// The one path segment after `prefix`, percent-decoded; `None` if the path does not
/// start with `prefix` or has more segments.
fn segment(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}
