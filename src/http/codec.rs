//! Bodies in and out: JSON or MessagePack by `Content-Type` and `Accept`, read under a
//! size limit and a deadline so a huge or slow body cannot tie up the server.

use super::error::{ApiError, Envelope};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub type Body = Full<Bytes>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Json,
    MsgPack,
}

const MSGPACK_TYPES: [&str; 3] = [
    "application/msgpack",
    "application/x-msgpack",
    "application/vnd.msgpack",
];

fn media_type(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    Some(
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

impl Codec {
    /// The request body's codec. A body without `Content-Type` is taken as JSON (what
    /// most HTTP clients mean); anything else but JSON or MessagePack is a 415.
    pub fn of_request(headers: &HeaderMap) -> Result<Codec, ApiError> {
        let Some(v) = headers.get(CONTENT_TYPE) else {
            return Ok(Codec::Json);
        };
        match media_type(v).as_deref() {
            Some("application/json") => Ok(Codec::Json),
            Some(t) if MSGPACK_TYPES.contains(&t) => Ok(Codec::MsgPack),
            _ => Err(ApiError::unsupported_media_type()),
        }
    }

    /// The response codec: MessagePack when the client accepts it, else JSON.
    pub fn of_response(headers: &HeaderMap) -> Codec {
        let wants_msgpack = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .any(|t| MSGPACK_TYPES.contains(&t.split(';').next().unwrap_or("").trim()));
        if wants_msgpack {
            Codec::MsgPack
        } else {
            Codec::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::MsgPack => "application/msgpack",
        }
    }

    /// Decodes a typed value, naming the path of the first structural error.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, ApiError> {
        match self {
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let v = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
                de.end()
                    .map_err(|e| ApiError::malformed(String::new(), clean(e.to_string())))?;
                Ok(v)
            }
            Codec::MsgPack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
                serde_path_to_error::deserialize(&mut de).map_err(path_error)
            }
        }
    }

    pub fn encode<T: Serialize>(self, status: StatusCode, value: &T) -> Response<Body> {
        let bytes = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::MsgPack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        };
        match bytes {
            Ok(b) => with_type(status, self.content_type(), Bytes::from(b)),
            Err(e) => {
                tracing::error!(error = %e, "response encoding failed");
                with_type(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    Bytes::from_static(
                        b"{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}",
                    ),
                )
            }
        }
    }

    pub fn error(self, e: &ApiError) -> Response<Body> {
        self.encode(e.status, &Envelope { error: e })
    }
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    // serde_path_to_error writes the root as "."; the contract's root is "".
    let path = if path == "." { String::new() } else { path };
    ApiError::malformed(path, clean(e.inner().to_string()))
}

/// Serde messages end with "at line 1 column 57", which is useful, and mention Rust
/// types such as `i64`, which are not: say "an integer" and "a number" instead.
fn clean(msg: String) -> String {
    msg.replace("expected i64", "expected an integer")
        .replace("expected u8", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Reads the whole body: 413 past `limit` (told by `Content-Length` before reading a
/// byte, or found while reading), 408 when it does not arrive within `deadline`.
pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(ApiError::too_large(limit));
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(ApiError::timeout()),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Ok(Err(_)) => Err(ApiError::malformed(
            String::new(),
            "the body ended early".into(),
        )),
    }
}
