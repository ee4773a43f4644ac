//! One multiplexed connection to Redis, re-opened on demand after a failure, every
//! command bounded by the configured timeout.
//!
//! Redis being down must never stall a caller for longer than the timeout, nor make a
//! background task spin: a failed command drops the connection, the next command
//! opens a new one (within the same timeout), and every failure is counted.

use prometheus::IntCounter;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue};
use std::time::Duration;
use tokio::sync::Mutex;

/// Why a Redis command did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct Conn {
    client: Client,
    timeout: Duration,
    current: Mutex<Option<MultiplexedConnection>>,
    errors: IntCounter,
}

impl Conn {
    pub fn new(client: Client, timeout: Duration, errors: IntCounter) -> Conn {
        Conn {
            client,
            timeout,
            current: Mutex::new(None),
            errors,
        }
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(c) = &*current {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        let opened = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| RedisError::Timeout(self.timeout))??;
        *current = Some(opened.clone());
        Ok(opened)
    }

    /// Runs one command within the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.within_timeout(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// Runs a pipeline within the timeout.
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.within_timeout(|mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    /// Runs a Lua script within the timeout (loading it on first use).
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.within_timeout(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    /// Runs `request` on the connection (a clone of the multiplexed handle) within the
    /// timeout, counting a failure and dropping the connection when it is unusable.
    async fn within_timeout<T, F, Fut>(&self, request: F) -> Result<T, RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = async {
            let c = self.connection().await?;
            tokio::time::timeout(self.timeout, request(c))
                .await
                .map_err(|_| RedisError::Timeout(self.timeout))?
                .map_err(RedisError::from)
        }
        .await;
        self.note(&result);
        result
    }

    /// Counts a failure and drops the connection, so the next command reconnects.
    fn note<T>(&self, result: &Result<T, RedisError>) {
        if let Err(e) = result {
            self.errors.inc();
            let unusable = match e {
                RedisError::Timeout(_) => true,
                RedisError::Redis(r) => {
                    r.is_io_error() || r.is_connection_dropped() || r.is_timeout()
                }
            };
            if unusable && let Ok(mut current) = self.current.try_lock() {
                *current = None;
            }
        }
    }
}
