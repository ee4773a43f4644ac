//! The simulator's HTTP client: JSON in and out over pooled keep-alive HTTP/1
//! connections, the way a checkout backend or POS gateway talks to aftercart.

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// How long one request may take before the simulator gives up on it.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: no answer within {}s", TIMEOUT.as_secs())]
    Timeout { url: String },
}

/// An answer: the status and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpConnector, Full<Bytes>>,
    base: String,
    key: String,
}

impl Client {
    /// A client for the server at `base` (`http://host:port`), authorising with `key`
    /// where a request asks for it.
    pub fn new(base: &str, key: &str) -> Client {
        Client {
            pool: Pool::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    /// Sends `body` (if any) to `target`: a path on the server, or an absolute URL as
    /// the server hands out for tracking.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        authorised: bool,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        };
        let transport = |reason: String| ClientError::Transport {
            url: url.clone(),
            reason,
        };
        let mut request = Request::builder().method(method).uri(&url);
        if authorised {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        }
        let payload = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|e| transport(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let response = self.pool.request(request).await.map_err(|e| {
                // The interesting part of a connection error is its source.
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason = format!("{reason}: {s}");
                    source = s.source();
                }
                transport(reason)
            })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout { url: url.clone() })?
    }
}
