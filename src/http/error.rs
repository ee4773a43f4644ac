//! The one error type of the HTTP boundary, mapped once to a status and a body:
//! `{"error": {"code", "message", "details": [{"path", "message"}]}}`. Internal details
//! (file paths, I/O errors) are logged, never sent to a client.

use crate::validation::Detail;
use http::StatusCode;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<Detail>) -> ApiError {
        self.details = details;
        self
    }

    pub fn invalid(details: Vec<Detail>) -> ApiError {
        let message = match details.len() {
            1 => "the request has 1 problem".to_string(),
            n => format!("the request has {n} problems"),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_details(details)
    }

    pub fn malformed(path: String, message: String) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "the body could not be decoded",
        )
        .with_details(vec![Detail { path, message }])
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this resource",
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/msgpack",
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer KEY)",
        )
    }

    pub fn forbidden(detail: Detail) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail.to_string())
            .with_details(vec![detail])
    }

    pub fn timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the body was not received in time",
        )
    }

    pub fn rate_limited() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

/// The wire envelope.
#[derive(Serialize)]
pub struct Envelope<'a> {
    pub error: &'a ApiError,
}
