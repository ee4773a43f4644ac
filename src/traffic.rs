//! Invalid traffic: who is calling (client addresses behind trusted proxies), rate
//! limits per address and per profile, and traffic that is not a person looking at a
//! page (known bots, impressions faster than a page can render, bursts).
//!
//! Invalid events are answered like valid ones (a beacon's answer matters to nobody)
//! but logged as `invalid` records with their reason and never counted or charged, so
//! a script fetching impression URLs in a loop cannot drain a budget. Decisions beyond
//! a rate limit get a `429`.

use crate::config::IpNet;
use dashmap::DashMap;
use http::HeaderMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// The peer address of the connection a request came on (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The client's address: the peer's, unless the peer is a trusted proxy, in which
/// case the rightmost `X-Forwarded-For` address that is not itself a trusted proxy
/// (everything left of that could have been written by the client).
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer.to_canonical();
    }
    let forwarded = (headers.get_all("x-forwarded-for").iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|&ip| !is_trusted(ip))
        .unwrap_or(peer)
        .to_canonical()
}

/// User agents of crawlers and scripts that never look at an offer. Headless browsers
/// are not on it: checkout integration tests and some real shoppers' tools use them.
const BOT_AGENTS: [&str; 10] = [
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "python-requests",
    "scrapy",
    "wget",
    "phantomjs",
    "httpclient",
];

/// Whether the `User-Agent` names a known bot.
pub fn is_bot(headers: &HeaderMap) -> bool {
    let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // Every browser sends a user agent: compare in place rather than lower-casing a
    // copy on every decision.
    let ua = ua.as_bytes();
    BOT_AGENTS
        .iter()
        .any(|b| (ua.windows(b.len())).any(|w| w.eq_ignore_ascii_case(b.as_bytes())))
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Token buckets per key: `per_second` sustained, `burst` at once.
pub struct RateLimiter<K: Hash + Eq> {
    per_second: f64,
    burst: f64,
    buckets: DashMap<K, Bucket>,
    /// When idle buckets were last dropped.
    pruned_ms: Mutex<i64>,
}

/// Buckets kept before idle ones are dropped: bounds memory under address floods.
const MAX_BUCKETS: usize = 100_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: f64, burst: u32) -> Option<RateLimiter<K>> {
        (per_second > 0.0).then(|| RateLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: DashMap::new(),
            pruned_ms: Mutex::new(0),
        })
    }

    /// Takes one token for `key` at `now_ms`; `false` when it has none left.
    pub fn allow(&self, key: &K, now_ms: i64) -> bool {
        if self.buckets.len() > MAX_BUCKETS {
            self.prune(now_ms);
        }
        let mut b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - b.at_ms).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that have refilled completely (their keys have been quiet).
    fn prune(&self, now_ms: i64) {
        let mut last = self.pruned_ms.lock().unwrap_or_else(|p| p.into_inner());
        if now_ms - *last < 1_000 {
            return;
        }
        *last = now_ms;
        let full_after_ms = (self.burst / self.per_second * 1000.0) as i64;
        self.buckets.retain(|_, b| now_ms - b.at_ms < full_after_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [net("10.0.0.0/8")];
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let direct: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(&h, direct, &trusted),
            direct,
            "an untrusted peer is the client"
        );
        assert_eq!(client_ip(&h, proxy, &[]), proxy);
    }

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let l = RateLimiter::new(2.0, 3).unwrap();
        let allowed = (0..10).filter(|_| l.allow(&1u8, 0)).count();
        assert_eq!(allowed, 3, "the burst");
        assert!(l.allow(&1u8, 500), "one more after half a second at 2/s");
        assert!(!l.allow(&1u8, 500));
        assert!(l.allow(&2u8, 500), "per key");
        assert!(RateLimiter::<u8>::new(0.0, 3).is_none());
    }

    #[test]
    fn bots_are_recognised_by_user_agent() {
        let mut h = HeaderMap::new();
        assert!(!is_bot(&h));
        h.insert(
            "user-agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1)".parse().unwrap(),
        );
        assert!(is_bot(&h));
        h.insert(
            "user-agent",
            "Mozilla/5.0 (X11) HeadlessChrome/130.0".parse().unwrap(),
        );
        assert!(!is_bot(&h));
    }
}
