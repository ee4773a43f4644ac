//! Shared state across a fleet of decision nodes.
//!
//! One node needs nothing here: its exposure log, campaigns and counters live in its own
//! data folder. A fleet of nodes behind one load balancer shares, through engines chosen
//! by configuration and compiled in by cargo features:
//!
//! - the exposure log and campaign changes on NATS JetStream ([`nats`], feature `nats`):
//!   every node's log is copied, in order, to one stream that `aftercart log` and
//!   `aftercart report` read, and a campaign changed on any node is applied on every other.
//!
//! Every node of a fleet shares the deployment's secrets (`token_secret`,
//! `identity_secret`, `admin_key`, set in the configuration rather than generated per
//! node), so a tracking token minted on one node is honoured on any other and an
//! identifier hashes the same everywhere. `docs/scale-out.md` is the deployment guide.

#[cfg(feature = "nats")]
pub mod nats;

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
