//! The checkout SDK (`/sdk/v1.js`) and the demo order-confirmation page (`/demo`),
//! both compiled into the binary so a deployment serves them with nothing to install.
//!
//! A version of the SDK never changes once released: pages pin it with Subresource
//! Integrity, and a changed file would be refused by every one of them. So it is
//! served as immutable for a year, with its SRI hash as the `ETag`; a fix ships as
//! `/sdk/v2.js`. The README states the hash, and a test checks that it matches.

use super::codec::{Body, empty, with_type};
use base64::Engine;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha384};
use std::sync::LazyLock;

/// The SDK's source, served as is: readable, and small enough not to need a build.
const SDK_V1: &str = include_str!("../../sdk/v1.js");
/// The demo page; `{{SDK_INTEGRITY}}` becomes the SDK's SRI hash when first served.
const DEMO: &str = include_str!("../../sdk/demo.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `integrity` attribute value of a file: `sha384-` and the base64 of its SHA-384.
pub fn integrity(bytes: &[u8]) -> String {
    let digest = Sha384::digest(bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The SRI hash of `/sdk/v1.js`, for `<script integrity=...>`.
pub fn v1_integrity() -> &'static str {
    &V1_ETAG_AND_SRI.1
}

static V1_ETAG_AND_SRI: LazyLock<(HeaderValue, String)> = LazyLock::new(|| {
    let sri = integrity(SDK_V1.as_bytes());
    // Base64 is all visible ASCII, so the quoted hash is always a valid header value.
    let etag = HeaderValue::from_str(&format!("\"{sri}\"")).expect("base64 is a valid ETag");
    (etag, sri)
});

static DEMO_PAGE: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(DEMO.replace("{{SDK_INTEGRITY}}", v1_integrity())));

/// `GET|HEAD /sdk/v1.js`: `304` when the client already holds this version.
pub fn v1(headers: &HeaderMap) -> Response<Body> {
    let etag = &V1_ETAG_AND_SRI.0;
    let mut r = if holds(headers, etag) {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        with_type(
            StatusCode::OK,
            JAVASCRIPT,
            Bytes::from_static(SDK_V1.as_bytes()),
        )
    };
    let h = r.headers_mut();
    h.insert(ETAG, etag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// Whether `If-None-Match` names `etag` (or `*`). Weak comparison, as RFC 9110 asks
/// for `If-None-Match`: `W/"x"` matches `"x"`.
fn holds(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours)
}

/// `GET|HEAD /demo`: an order-confirmation page that renders offers with the SDK.
pub fn demo() -> Response<Body> {
    let mut r = with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        DEMO_PAGE.clone(),
    );
    let h = r.headers_mut();
    // Each load is a new order, so nothing may come from a cache.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // What a real confirmation page should do too: its URL carries the order.
    h.insert(
        REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_sha384_in_base64() {
        // The Subresource Integrity spec's example, also what `openssl dgst -sha384 -binary | base64` gives.
        assert_eq!(
            integrity(b"alert('Hello, world.');"),
            "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let etag = HeaderValue::from_static("\"sha384-abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(IF_NONE_MATCH, HeaderValue::from_static(v));
            holds(&h, &etag)
        };
        assert!(with("\"sha384-abc\""));
        assert!(with("W/\"sha384-abc\""));
        assert!(with("\"other\", \"sha384-abc\""));
        assert!(with("*"));
        assert!(!with("\"sha384-abd\""));
        assert!(!with("sha384-abc"));
        assert!(!holds(&HeaderMap::new(), &etag));
    }

    #[test]
    fn the_demo_pins_the_sdk_it_is_served_with() {
        let page = String::from_utf8(DEMO_PAGE.to_vec()).unwrap();
        assert!(!page.contains("{{"), "an unfilled placeholder");
        assert!(page.contains(&format!("integrity=\"{}\"", v1_integrity())));
    }
}
