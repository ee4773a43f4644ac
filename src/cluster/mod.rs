//! Shared state across a fleet of decision nodes.
//!
//! One node needs nothing here: its exposure log, campaigns and counters live in its own
//! data folder and in process. A fleet behind a load balancer must agree on what a
//! shopper or an advertiser would notice differing between nodes, and shares it through
//! engines chosen by configuration and compiled in by cargo features:
//!
//! - the exposure log and campaign changes on NATS JetStream ([`nats`], feature `nats`,
//!   section `[nats]`, see [`NatsConfig`]): every node's log is copied, in order, to one
//!   stream that `aftercart log` and `aftercart report` read, and a campaign changed on
//!   any node is applied on every other.
//! - budgets, frequency caps, identity links and stock on Redis ([`redis`], feature
//!   `redis`, section `[redis]`, see [`RedisSettings`]), behind hooks that cost one
//!   `OnceLock` read when unset:
//!   - [`Replication`]: what a decision linked and served, what a purchase suppresses,
//!     and what an erasure forgot, sent to every other node (a Redis Stream), which
//!     applies it to its own identity graph and per-profile memory. Decisions never
//!     wait for it.
//!   - budget leases ([`crate::delivery::budget::Lease`]): each node admits offers
//!     against a slice of the remaining budget taken atomically from Redis.
//!   - fleet stock ([`crate::inventory::Inventory::set_fleet_levels`]): purchases take
//!     stock in Redis; decisions read a local copy refreshed in the background.
//!
//! Every node of a fleet shares the deployment's secrets (`token_secret`,
//! `identity_secret`, `admin_key`, set in the configuration rather than generated per
//! node), so a tracking token minted on one node is honoured on any other and an
//! identifier hashes the same everywhere. `docs/scale-out.md` is the deployment guide,
//! with the bound each engine keeps.

#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

use crate::identity::IdHash;

/// Default of `nats.stream`.
pub const DEFAULT_NATS_STREAM: &str = "AFTERCART";
/// Default of `nats.ack_wait_ms`: long enough for a JetStream acknowledgement on a
/// healthy network (a few milliseconds), short enough that an ingest client never
/// notices an outage.
pub const DEFAULT_NATS_ACK_WAIT_MS: u64 = 250;
/// Upper bound of `nats.ack_wait_ms`.
pub const MAX_NATS_ACK_WAIT_MS: u64 = 10_000;

/// The `[nats]` section: where this node copies its exposure log and hears of other
/// nodes' campaign changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` (or `host:port`).
    pub url: String,
    /// The JetStream stream holding every node's records (created if missing).
    pub stream: String,
    /// This node's name in the stream's subjects; `None`: a generated id kept in the
    /// data folder (`DATA/node.id`).
    pub node_id: Option<String>,
    /// How long a conversion, purchase or campaign change waits, after its local fsync,
    /// for JetStream to acknowledge its record; 0 never waits.
    pub ack_wait_ms: u64,
}

/// A NATS server URL: `nats://host:port`, `tls://host:port` or `host:port`, with a host
/// and a port.
pub fn parse_nats_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let rest = ["nats://", "tls://"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    let usage = "must be nats://host:port (or tls://host:port)";
    if rest.contains("://") {
        return Err(format!("{usage}: unknown scheme"));
    }
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err(format!("{usage}: no port"));
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{usage}: bad host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("{usage}: bad port")),
    }
}

/// A stream name or node id: 1-64 of `A-Z a-z 0-9 _ -` (they become parts of NATS
/// subjects and names, where dots, spaces and wildcards mean something else).
pub fn parse_nats_name(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1-64 of A-Z a-z 0-9 _ -".to_string())
    }
}

/// Whether this build can talk to NATS (`--features nats`).
pub const NATS_BUILT_IN: bool = cfg!(feature = "nats");

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
    /// How often served offers and links are sent to the fleet.
    pub sync_interval_ms: u64,
    /// How often the budget leases decisions asked for are taken and topped up. A
    /// round handles only what the decisions queued, so its cost follows the traffic,
    /// not the size of the catalogue; a campaign's first decisions of the day on a
    /// node go without it until the next round.
    pub lease_interval_ms: u64,
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
            lease_interval_ms: 200,
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
            .field("lease_interval_ms", &self.lease_interval_ms)
            .field("lease_percent", &self.lease_percent)
            .field("lease_min_micros", &self.lease_min_micros)
            .field("stream_max_len", &self.stream_max_len)
            .field("stock_refresh_ms", &self.stock_refresh_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_toml_str;

    fn error_keys(toml: &str) -> Vec<String> {
        match from_toml_str(toml) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.key.clone()).collect(),
        }
    }

    #[test]
    fn the_nats_section_is_checked_whole() {
        // No section: a node on its own.
        assert_eq!(from_toml_str("").unwrap().nats, None);
        // Every problem at once, each naming its key; unknown keys are errors.
        let keys = error_keys(
            "[nats]\nurl = \"http://x:1\"\nstream = \"a.b\"\nnode_id = \"*\"\nack_wait_ms = 99999\nbogus = 1\n",
        );
        let mut keys = keys;
        keys.sort();
        assert_eq!(
            keys,
            [
                "nats.ack_wait_ms",
                "nats.bogus",
                "nats.node_id",
                "nats.stream",
                "nats.url"
            ]
        );
        // Settings without a URL mean nothing.
        assert_eq!(error_keys("[nats]\nstream = \"S\"\n"), ["nats.stream"]);
    }

    #[cfg(feature = "nats")]
    #[test]
    fn a_valid_nats_section_with_defaults() {
        let config = from_toml_str("[nats]\nurl = \"nats://127.0.0.1:4222\"\n").unwrap();
        assert_eq!(
            config.nats,
            Some(NatsConfig {
                url: "nats://127.0.0.1:4222".into(),
                stream: DEFAULT_NATS_STREAM.into(),
                node_id: None,
                ack_wait_ms: DEFAULT_NATS_ACK_WAIT_MS,
            })
        );
        let config = from_toml_str("[nats]\nurl = \"n:1\"\nack_wait_ms = 0\n").unwrap();
        assert_eq!(config.nats.map(|n| n.ack_wait_ms), Some(0));
    }

    #[cfg(not(feature = "nats"))]
    #[test]
    fn a_build_without_nats_refuses_the_section() {
        let errors = from_toml_str("[nats]\nurl = \"nats://127.0.0.1:4222\"\n").unwrap_err();
        let e = &errors.0[0];
        assert_eq!(
            (e.source.as_str(), e.key.as_str()),
            (crate::config::INLINE_SOURCE, "nats.url")
        );
        assert!(e.message.contains("--features nats"), "{}", e.message);
    }

    #[test]
    fn nats_urls_and_names() {
        for good in [
            "nats://127.0.0.1:4222",
            "tls://nats.example:4443",
            "localhost:4222",
        ] {
            assert!(parse_nats_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "nats://",
            "nats://host",
            "http://host:1",
            "nats://host:0",
            "nats://:4222",
        ] {
            assert!(parse_nats_url(bad).is_err(), "{bad}");
        }
        assert!(parse_nats_name("node-a_1").is_ok());
        for bad in ["", "a.b", "a b", "*", ">", &"x".repeat(65)] {
            assert!(parse_nats_name(bad).is_err(), "{bad}");
        }
    }
}
