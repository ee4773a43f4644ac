//! Shared state across a fleet of decision nodes.
//!
//! One node keeps everything in process and in files; a fleet behind a load balancer
//! must agree on the few things a shopper or an advertiser would notice differing
//! between nodes: that a budget is spent once, that a frequency cap counts offers from
//! every node, that a unit of stock is sold once, and that identifiers linked on one
//! node resolve to one profile on all of them.
//!
//! The embedded default is unchanged when nothing here is configured: these are hooks
//! that cost one `OnceLock` read when unset. With the `redis` cargo feature and a
//! `[redis]` section (see [`RedisSettings`]), [`redis`] plugs in behind them:
//!
//! - [`Replication`]: what a decision linked and served, what a purchase suppresses,
//!   and what an erasure forgot,
//!   sent to every other node (a Redis Stream), which applies it to its own identity
//!   graph and per-profile memory. Decisions never wait for it.
//! - budget leases ([`crate::delivery::budget::Lease`]): each node admits offers
//!   against a slice of the remaining budget taken atomically from Redis.
//! - fleet stock ([`crate::inventory::Inventory::set_fleet_levels`]): purchases take
//!   stock in Redis; decisions read a local copy refreshed in the background.
//!
//! The guide, with the bounds each of these keeps, is `docs/scale-out-redis.md`.

#[cfg(feature = "redis")]
pub mod redis;

use crate::identity::IdHash;

/// Receives what this node must tell the rest of the fleet. Every method returns at
/// once (it queues); the decision path calls it.
pub trait Replication: Send + Sync {
    /// A decision with personalisation consent linked `ids` and served the campaigns
    /// in `served` (campaign id hash, its longest cap window in ms) at `at_ms`.
    fn decided(&self, ids: &[IdHash], served: &[(u64, i64)], at_ms: i64);

    /// A purchase by the person behind `ids` at `at_ms`, of items with these keys
    /// (see [`crate::delivery::profiles::item_keys`]): suppression on every node.
    fn purchased(&self, ids: &[IdHash], at_ms: i64, items: &[u64]);

    /// An erasure forgot `ids` and every profile holding them.
    fn erased(&self, ids: &[IdHash]);
}

/// The `[redis]` section of the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`, `rediss://…` or `unix://path`.
    pub url: String,
    /// Prepended to every key, so fleets (or tests) can share one Redis.
    pub key_prefix: String,
    /// How long a purchase waits for Redis before answering 503 (and the bound on
    /// every background command).
    pub timeout_ms: u64,
    /// How often served offers and links are sent to the fleet, and how often budget
    /// leases are topped up.
    pub sync_interval_ms: u64,
    /// A lease takes this share (percent) of what remains of a budget ...
    pub lease_percent: u64,
    /// ... but at least this much (micros), so a nearly spent budget is not leased a
    /// cent at a time.
    pub lease_min_micros: u64,
    /// Entries kept in the replication stream (approximately): how far back a node
    /// that was away can catch up.
    pub stream_max_len: u64,
    /// How often the local copy of fleet stock is refreshed (decisions read it).
    pub stock_refresh_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> RedisSettings {
        RedisSettings {
            url: String::new(),
            key_prefix: "aftercart:".to_string(),
            timeout_ms: 250,
            sync_interval_ms: 10,
            lease_percent: 5,
            lease_min_micros: 100_000,
            stream_max_len: 1_000_000,
            stock_refresh_ms: 250,
        }
    }
}

// The URL may carry a password: never printed.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("sync_interval_ms", &self.sync_interval_ms)
            .field("lease_percent", &self.lease_percent)
            .field("lease_min_micros", &self.lease_min_micros)
            .field("stream_max_len", &self.stream_max_len)
            .field("stock_refresh_ms", &self.stock_refresh_ms)
            .finish()
    }
}
