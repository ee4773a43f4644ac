//! CORS for the public endpoints, so a shop's page on its own domain can call
//! aftercart from the browser.
//!
//! Only the endpoints a checkout page calls without a key answer cross-origin:
//! decisions, the events (impression, click, purchase) and the SDK under `/sdk/`.
//! Management endpoints never carry CORS headers: their keys belong on servers, and a
//! browser refusing to send one cross-origin is a safety net, not a nuisance. For the
//! same reason `Authorization` is not an allowed request header.
//!
//! With `cors_allowed_origins = ["*"]` (the default) every origin gets
//! `Access-Control-Allow-Origin: *`: no credentials are involved (the SDK sends no
//! cookies), and one answer fits every origin, so caches need no `Vary`. With a list,
//! an allowed origin is echoed and every public response says `Vary: Origin`, even one
//! without CORS headers, so a shared cache never hands one origin's answer to another.
//! A disallowed origin gets no CORS headers (the browser then refuses the response),
//! and its preflight a `403` that says why.

use super::codec::{Body, empty};
use super::error::ApiError;
use crate::config::AllowedOrigins;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ALLOW, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// The request headers a page may send: `Content-Type: application/json` (which
/// makes a request "non-simple"), `Accept` for MessagePack, `Sec-GPC` (browsers add it
/// themselves), and the publishable placement key.
/// Kevel's browser SDK adds `X-Adzerk-Sdk-Version` (and `X-Adzerk-Explain`) to its
/// decision requests, so `/api/v2` must allow them for the drop-in to work in a page.
const ALLOWED_HEADERS: &str =
    "Content-Type, Accept, Sec-GPC, X-Aftercart-Key, X-Adzerk-Sdk-Version, X-Adzerk-Explain";
/// How long a browser may reuse a preflight: Chromium caps this at two hours, so
/// asking for more would only mislead.
const MAX_AGE_SECS: &str = "7200";

/// The methods of a public path, or `None` for every other path.
fn public_methods(path: &str) -> Option<&'static str> {
    match path {
        "/v1/decisions" | "/v1/events/purchase" | "/api/v2" => Some("POST, OPTIONS"),
        "/v1/events/impression" => Some("GET, POST, OPTIONS"),
        "/v1/events/click" => Some("GET, OPTIONS"),
        p if p.starts_with("/sdk/") => Some("GET, HEAD, OPTIONS"),
        _ => None,
    }
}

/// What CORS means for one request, decided before it is dispatched.
pub struct Cors {
    /// The public path's methods; `None` on other paths (no CORS at all).
    methods: Option<&'static str>,
    /// `Access-Control-Allow-Origin` for an allowed origin.
    allow_origin: Option<HeaderValue>,
    /// The answer depends on `Origin` (a list is configured).
    vary: bool,
    /// The request carried an `Origin` that is not allowed.
    denied: bool,
}

impl Cors {
    pub fn of(allowed: &AllowedOrigins, path: &str, headers: &HeaderMap) -> Cors {
        let methods = public_methods(path);
        let origin = headers.get(ORIGIN).filter(|_| methods.is_some());
        let vary = methods.is_some() && matches!(allowed, AllowedOrigins::List(_));
        let (allow_origin, denied) = match origin.map(|o| (o, o.to_str())) {
            None => (None, false),
            Some((_, Ok(o))) if allowed.allows(o) => match allowed {
                AllowedOrigins::Any => (Some(HeaderValue::from_static("*")), false),
                AllowedOrigins::List(_) => (origin.cloned(), false),
            },
            Some(_) => (None, true),
        };
        Cors {
            methods,
            allow_origin,
            vary,
            denied,
        }
    }

    /// The answer to an `OPTIONS` request on a public path (a preflight when it asks
    /// for a method from an `Origin`); `None` elsewhere, so management paths keep
    /// answering `405`.
    pub fn options(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        let methods = self.methods.filter(|_| method == Method::OPTIONS)?;
        let preflight =
            headers.contains_key(ORIGIN) && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && self.allow_origin.is_none() {
            return None;
        }
        let mut r = empty(StatusCode::NO_CONTENT);
        let h = r.headers_mut();
        h.insert(ALLOW, HeaderValue::from_static(methods));
        if preflight {
            h.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(methods),
            );
            h.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            h.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE_SECS),
            );
        }
        Some(r)
    }

    /// The error for a preflight from an origin that is not allowed.
    pub fn denied_preflight(&self, method: &Method) -> Option<ApiError> {
        (self.denied && self.methods.is_some() && method == Method::OPTIONS).then(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "pages from this origin may not call aftercart (config cors_allowed_origins)",
            )
        })
    }

    /// Adds the CORS headers this request earned to its response, whatever its status:
    /// a page must be able to read a `409 out_of_stock` as much as a `201`.
    pub fn apply(&self, response: &mut Response<Body>) {
        let h = response.headers_mut();
        if self.vary {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = &self.allow_origin {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
    }
}
