//! Configuration for `aftercart serve`.
//!
//! Settings are layered, later layers winning key by key:
//! built-in defaults < TOML file < `AFTERCART_*` environment variables < command-line flags.
//! The file is the one named by `--config`, else by `AFTERCART_CONFIG`; with neither, only
//! defaults, environment and flags apply. A TOML key `a.b` is the variable `AFTERCART_A_B`.
//! Environment and flag values are strings and are coerced here: numbers, booleans as
//! `true`/`false`/`1`/`0`, lists as comma-separated items. Placement rules are file-only.
//!
//! Error policy: a server that starts with a half-understood configuration is worse than one
//! that refuses to start, so every layer is read in full and *every* problem is returned at
//! once, each naming its source (file path, variable or flag) and key. Unknown keys, in the
//! file at any depth or as `AFTERCART_*` variables, are errors too: a typo must never fall
//! back silently to a default. Secret values are never quoted in messages, since
//! configuration errors end up in logs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono_tz::Tz;

use crate::money::Micros;

/// Loopback only, so a fresh install is not exposed before someone decides it should be.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// Relative to the working directory, matching the layout of the repository and the docs.
pub const DEFAULT_CAMPAIGNS: &str = "./campaigns";
/// Next to the campaigns, so a checkout of the repository runs without any setup.
pub const DEFAULT_DATA: &str = "./data";
/// The most common deployment currency; anyone else must say so explicitly.
pub const DEFAULT_CURRENCY: &str = "USD";
/// Reporting days should not depend on the server's local time zone.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::UTC;
/// Creative and click URLs must be https unless an operator opts in (e.g. for local tests).
pub const DEFAULT_ALLOW_HTTP_URLS: bool = false;
/// Advertisers' uploads serve at once unless an operator wants to review them first.
pub const DEFAULT_REQUIRE_APPROVAL: bool = false;
/// A shopper buying from an offer buys a few, not a pallet: bounds one purchase.
pub const DEFAULT_MAX_PURCHASE_QUANTITY: u32 = 10;
/// Upper bound for `max_purchase_quantity`.
pub const MAX_PURCHASE_QUANTITY_LIMIT: u32 = 1_000;
/// A decision request with a large basket is a few KiB; 1 MiB leaves ample headroom.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Batch endpoints (event uploads, POS back-fill) legitimately carry many requests.
pub const DEFAULT_MAX_BATCH_BODY_BYTES: usize = 16 << 20;
/// More basket lines than any real order, few enough to bound targeting work per request.
pub const DEFAULT_MAX_ITEMS: usize = 100;
/// A confirmation page rarely shows more than a handful of offers.
pub const DEFAULT_MAX_SLOTS: u8 = 10;
/// Upper bound for `max_slots`: beyond this a page is a catalogue, not an offer strip.
pub const MAX_SLOTS_LIMIT: u8 = 64;
/// Slow clients must not hold connections open before sending their headers (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// Long enough for keep-alive between page views, short enough to recycle idle sockets.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Well under common file-descriptor limits, far above normal concurrent load.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// In-flight decisions take milliseconds; ten seconds covers slow clients during deploys.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Shoppers revisit their confirmation page for about a day; they should see the same offers.
pub const DEFAULT_DECISION_REPLAY_SECS: u64 = 86_400;
/// A kept decision is up to about a kilobyte (its sealed tokens): 512 MiB holds half a
/// million or more, a day of a mid-size retailer's checkouts, and minutes at full load.
pub const DEFAULT_DECISION_REPLAY_MEMORY_MB: u64 = 512;
/// Big enough that rotation is rare, small enough that retention frees space in useful steps.
pub const DEFAULT_LOG_SEGMENT_BYTES: u64 = 128 << 20;
/// Decision records reach disk within this; short enough to lose little on power loss, long enough to group many fsyncs into one.
pub const DEFAULT_LOG_FLUSH_INTERVAL_MS: u64 = 10;
/// Absorbs bursts of a second or more at full decision rate before producers must wait.
pub const DEFAULT_LOG_QUEUE_CAPACITY: usize = 65_536;
/// A producer waits this long for room in a full log queue before answering 503.
pub const DEFAULT_LOG_QUEUE_WAIT_MS: u64 = 1_000;
/// An offer's expected cost stays reserved this long for its impression or click
/// (the contract's 10 minutes): long enough for a slow page, short enough that an
/// A person has a handful of identifiers per kind (devices, cards, addresses); 64
/// Rate limits are off unless configured: behind a CDN or a shop's own proxy many
/// shoppers share an address, so a limit only makes sense with `trusted_proxies` set
/// and a figure that fits the shop's traffic (see the README).
pub const DEFAULT_RATE_LIMIT_PER_ADDRESS: u32 = 0;
/// Requests an address may make at once before its rate applies.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 20;
/// Decisions per minute for one profile; 0 is no limit.
pub const DEFAULT_RATE_LIMIT_PER_PROFILE: u32 = 0;
/// No real page shows an offer and reports it seen within 100 ms of asking for it:
/// faster impressions are scripts.
pub const DEFAULT_MIN_RENDER_MS: u64 = 100;
/// leaves room for a household, not for a store's test card gluing shoppers together.
pub const DEFAULT_MAX_PROFILE_IDENTIFIERS: u16 = 64;
/// abandoned page does not hold budget back.
pub const DEFAULT_RESERVATION_TTL_SECS: u64 = 600;
/// An impression beacon later than an hour after its decision is not a real view.
pub const DEFAULT_IMPRESSION_TTL_SECS: u64 = 3_600;
/// Clicks count for a week: shoppers come back to their confirmation e-mail.
pub const DEFAULT_CLICK_TTL_SECS: u64 = 7 * 86_400;
/// Conversions are deduplicated for 30 days; older ones are refused rather than risk double counting.
pub const DEFAULT_DEDUP_HORIZON_DAYS: u64 = 30;
/// A restart replays at most about a minute of log.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: u64 = 60;
/// Upper bound for `workers`: more threads than this only adds scheduling overhead.
pub const MAX_WORKERS: usize = 1024;
/// Human-readable logs for a first run; production deployments switch to JSON.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
/// Startup, reloads and errors, without per-request noise.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Integrations typically call only after their own consent check; EU sites should override.
pub const DEFAULT_CONSENT: Consent = Consent {
    personalization: true,
    measurement: true,
};
/// Public endpoints (decisions, events, the SDK) need no key and are called from shops'
/// own pages on their own domains, so every origin may call them unless an operator
/// narrows it; management endpoints never answer cross-origin.
pub const DEFAULT_CORS_ALLOWED_ORIGINS: AllowedOrigins = AllowedOrigins::Any;
/// Where the sample stock for the demo lives, relative to the campaigns folder: stock
/// belongs to the campaign set that promotes it, so a deployment with its own folder
/// never picks up the samples' stock.
pub const INVENTORY_SEED_IN_CAMPAIGNS: &str = "inventory/seed.json";
/// Short admin keys can be guessed online; 16 characters is the least we accept.
pub const MIN_ADMIN_KEY_CHARS: usize = 16;

/// Values given on the command line; they override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub campaigns: Option<PathBuf>,
    pub data: Option<PathBuf>,
}

/// The resolved configuration. `Debug` redacts the secrets.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base URL for tracking and click links, without a trailing slash.
    pub public_url: String,
    pub campaigns: PathBuf,
    pub data: PathBuf,
    /// ISO 4217 code, upper-case.
    pub currency: String,
    pub timezone: Tz,
    /// Bearer key for the admin API; `None` disables it.
    pub admin_key: Option<String>,
    /// Key for sealing tracking tokens.
    pub token_secret: Option<[u8; 32]>,
    /// Key for hashing customer identifiers.
    pub identity_secret: Option<[u8; 32]>,
    pub allow_http_urls: bool,
    /// Advertisers' uploads wait as `pending_review` until an admin activates them.
    pub require_approval: bool,
    /// The most units one in-unit purchase may take.
    pub max_purchase_quantity: u32,
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    pub max_items: usize,
    pub max_slots: u8,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub shutdown_grace_ms: u64,
    pub decision_replay_secs: u64,
    /// Memory for decisions kept for replays; the oldest are dropped to stay within it.
    pub decision_replay_memory_mb: u64,
    pub log_segment_bytes: u64,
    pub log_flush_interval_ms: u64,
    pub log_queue_capacity: usize,
    pub log_queue_wait_ms: u64,
    pub impression_ttl_secs: u64,
    /// How long a served offer's expected cost stays reserved.
    pub reservation_ttl_secs: u64,
    /// The most identifiers one profile may link; links beyond are refused.
    pub max_profile_identifiers: u16,
    /// Public requests (decisions, events) per second per client address; 0 is off.
    pub rate_limit_per_address: u32,
    pub rate_limit_burst: u32,
    /// Decisions per minute per profile; 0 is off.
    pub rate_limit_per_profile: u32,
    /// Impressions sooner than this after their decision are invalid; 0 is off.
    pub min_render_ms: u64,
    pub click_ttl_secs: u64,
    pub dedup_horizon_days: u64,
    pub checkpoint_interval_secs: u64,
    /// Exposure log segments older than this are deleted (whole, and only once a
    /// checkpoint covers them); `None` keeps everything.
    pub log_retention_hours: Option<u64>,
    /// Log decision-side records (`decision`, `nofill`). Only load tests that measure
    /// the log's own cost turn this off: measurement needs these records.
    pub log_decisions: bool,
    /// Tokio worker threads; `None` means one per core.
    pub workers: Option<usize>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub default_consent: Consent,
    pub trusted_proxies: Vec<IpNet>,
    /// Origins whose pages may call the public endpoints from a browser.
    pub cors_allowed_origins: AllowedOrigins,
    /// Serve `/demo`. Its offers are real decisions (counted and charged), so it is on
    /// only where nobody else can reach it unless an operator says otherwise.
    pub demo: bool,
    /// A stock feed applied at start to SKUs and locations never reported before.
    pub inventory_seed: Option<PathBuf>,
    pub placements: BTreeMap<String, PlacementRules>,
    /// `[nats]`: the exposure log and campaign changes shared on NATS JetStream (a
    /// fleet; see [`crate::cluster`]). `None`: this node stands alone.
    pub nats: Option<crate::cluster::NatsConfig>,
    /// Shared state across a fleet of nodes (`[redis]`); `None` runs the node on its
    /// own, with everything in process and in files.
    pub redis: Option<crate::cluster::RedisSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            public_url: format!("http://{DEFAULT_LISTEN}"),
            campaigns: PathBuf::from(DEFAULT_CAMPAIGNS),
            data: PathBuf::from(DEFAULT_DATA),
            currency: DEFAULT_CURRENCY.to_string(),
            timezone: DEFAULT_TIMEZONE,
            admin_key: None,
            token_secret: None,
            identity_secret: None,
            allow_http_urls: DEFAULT_ALLOW_HTTP_URLS,
            require_approval: DEFAULT_REQUIRE_APPROVAL,
            max_purchase_quantity: DEFAULT_MAX_PURCHASE_QUANTITY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_body_bytes: DEFAULT_MAX_BATCH_BODY_BYTES,
            max_items: DEFAULT_MAX_ITEMS,
            max_slots: DEFAULT_MAX_SLOTS,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            decision_replay_secs: DEFAULT_DECISION_REPLAY_SECS,
            decision_replay_memory_mb: DEFAULT_DECISION_REPLAY_MEMORY_MB,
            log_segment_bytes: DEFAULT_LOG_SEGMENT_BYTES,
            log_flush_interval_ms: DEFAULT_LOG_FLUSH_INTERVAL_MS,
            log_queue_capacity: DEFAULT_LOG_QUEUE_CAPACITY,
            log_queue_wait_ms: DEFAULT_LOG_QUEUE_WAIT_MS,
            impression_ttl_secs: DEFAULT_IMPRESSION_TTL_SECS,
            reservation_ttl_secs: DEFAULT_RESERVATION_TTL_SECS,
            max_profile_identifiers: DEFAULT_MAX_PROFILE_IDENTIFIERS,
            rate_limit_per_address: DEFAULT_RATE_LIMIT_PER_ADDRESS,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            rate_limit_per_profile: DEFAULT_RATE_LIMIT_PER_PROFILE,
            min_render_ms: DEFAULT_MIN_RENDER_MS,
            click_ttl_secs: DEFAULT_CLICK_TTL_SECS,
            dedup_horizon_days: DEFAULT_DEDUP_HORIZON_DAYS,
            checkpoint_interval_secs: DEFAULT_CHECKPOINT_INTERVAL_SECS,
            log_retention_hours: None,
            log_decisions: true,
            workers: None,
            log_format: DEFAULT_LOG_FORMAT,
            log_level: DEFAULT_LOG_LEVEL.to_string(),
            default_consent: DEFAULT_CONSENT,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: DEFAULT_CORS_ALLOWED_ORIGINS,
            demo: DEFAULT_LISTEN.ip().is_loopback(),
            inventory_seed: None,
            placements: BTreeMap::new(),
            nats: None,
            redis: None,
        }
    }
}

impl Config {
    pub fn placement(&self, name: &str) -> Option<&PlacementRules> {
        self.placements.get(name)
    }
}

// Hand-written so that logging the configuration at startup cannot leak the secrets.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| set.then_some("<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("campaigns", &self.campaigns)
            .field("data", &self.data)
            .field("currency", &self.currency)
            .field("timezone", &self.timezone)
            .field("admin_key", &redacted(self.admin_key.is_some()))
            .field("token_secret", &redacted(self.token_secret.is_some()))
            .field("identity_secret", &redacted(self.identity_secret.is_some()))
            .field("allow_http_urls", &self.allow_http_urls)
            .field("require_approval", &self.require_approval)
            .field("max_purchase_quantity", &self.max_purchase_quantity)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch_body_bytes", &self.max_batch_body_bytes)
            .field("max_items", &self.max_items)
            .field("max_slots", &self.max_slots)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("decision_replay_secs", &self.decision_replay_secs)
            .field("decision_replay_memory_mb", &self.decision_replay_memory_mb)
            .field("log_segment_bytes", &self.log_segment_bytes)
            .field("log_flush_interval_ms", &self.log_flush_interval_ms)
            .field("log_queue_capacity", &self.log_queue_capacity)
            .field("log_queue_wait_ms", &self.log_queue_wait_ms)
            .field("impression_ttl_secs", &self.impression_ttl_secs)
            .field("reservation_ttl_secs", &self.reservation_ttl_secs)
            .field("max_profile_identifiers", &self.max_profile_identifiers)
            .field("rate_limit_per_address", &self.rate_limit_per_address)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("rate_limit_per_profile", &self.rate_limit_per_profile)
            .field("min_render_ms", &self.min_render_ms)
            .field("click_ttl_secs", &self.click_ttl_secs)
            .field("dedup_horizon_days", &self.dedup_horizon_days)
            .field("checkpoint_interval_secs", &self.checkpoint_interval_secs)
            .field("log_retention_hours", &self.log_retention_hours)
            .field("log_decisions", &self.log_decisions)
            .field("workers", &self.workers)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("default_consent", &self.default_consent)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("demo", &self.demo)
            .field("inventory_seed", &self.inventory_seed)
            .field("placements", &self.placements)
            // The URL may carry a user and password.
            .field("nats", &self.nats.as_ref().map(|n| (&n.stream, &n.node_id)))
            .field("redis", &self.redis)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Consent assumed when a request does not state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    pub personalization: bool,
    pub measurement: bool,
}

/// Which origins' pages may call the public endpoints from a browser (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `["*"]`: any page; answered with `Access-Control-Allow-Origin: *`.
    Any,
    /// Exactly these origins (lower-case `scheme://host[:port]`, default ports left
    /// out, as browsers send them); an empty list allows no cross-origin call.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Whether a browser's `Origin` header value is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// Per-placement rules from `[placements.<name>]`; blocklists are lower-case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacementRules {
    pub floor_ecpm: Micros,
    pub blocked_advertisers: Vec<String>,
    pub blocked_categories: Vec<String>,
    /// Publishable keys, one of which a decision for this placement must carry in
    /// `X-Aftercart-Key` (none: the placement is open). Public by design (they sit in
    /// a page's source); they keep other sites from asking for this placement's offers.
    pub publishable_keys: Vec<String>,
}

/// An address range such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
///
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as seen on dual-stack sockets) are treated
/// as the IPv4 address they carry, both when parsing a range and when testing membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an IP address or CIDR range: {s:?}");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => {
                // `u8::from_str` accepts a leading `+`, which is not CIDR notation.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        // A mapped range like ::ffff:10.0.0.0/104 is really 10.0.0.0/8; below /96 it covers
        // non-mapped addresses too and stays IPv6.
        match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => Ok(IpNet {
                addr: addr.to_canonical(),
                prefix: prefix - 96,
            }),
            _ => Ok(IpNet { addr, prefix }),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One bad setting: where it came from (file path, `AFTERCART_*` variable or `--flag`),
/// the dotted TOML key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub source: String,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(source: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            source: source.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A variable or flag already names its key; repeating it would only add noise.
        let source_names_key = self.key.is_empty()
            || self.source.eq_ignore_ascii_case(&env_var(&self.key))
            || self.source == format!("--{}", self.key);
        if source_names_key {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {}: {}", self.source, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found; never empty when returned as an error.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const ENV_PREFIX: &str = "AFTERCART_";
const ENV_CONFIG: &str = "AFTERCART_CONFIG";
/// Source name used by [`from_toml_str`], which has no file path to report.
pub const INLINE_SOURCE: &str = "config";

/// Every key settable from the file and the environment. `placements` is file-only because
/// nested per-placement rules have no sensible spelling as variables.
#[rustfmt::skip]
const SETTINGS: &[&str] = &[
    "listen", "public_url", "campaigns", "data", "currency", "timezone",
    "admin_key", "token_secret", "identity_secret", "allow_http_urls",
    "require_approval", "max_purchase_quantity",
    "max_body_bytes", "max_batch_body_bytes", "max_items", "max_slots",
    "header_read_timeout_ms", "idle_timeout_ms", "max_connections", "shutdown_grace_ms",
    "decision_replay_secs", "decision_replay_memory_mb", "workers", "log_format", "log_level",
    "log_segment_bytes", "log_flush_interval_ms", "log_queue_capacity", "log_queue_wait_ms", "impression_ttl_secs", "reservation_ttl_secs", "max_profile_identifiers", "rate_limit_per_address", "rate_limit_burst", "rate_limit_per_profile", "min_render_ms", "click_ttl_secs", "dedup_horizon_days", "checkpoint_interval_secs", "log_retention_hours", "log_decisions",
    "default_consent.personalization", "default_consent.measurement", "trusted_proxies",
    "cors_allowed_origins", "demo", "inventory_seed",
    "nats.url", "nats.stream", "nats.node_id", "nats.ack_wait_ms",
    "redis.url", "redis.key_prefix", "redis.timeout_ms", "redis.sync_interval_ms",
    "redis.lease_interval_ms",
    "redis.lease_percent", "redis.lease_min_micros", "redis.stream_max_len",
    "redis.stock_refresh_ms",
];

fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Loads the configuration from all layers. `env` is the process environment
/// (`std::env::vars()`); variables without the `AFTERCART_` prefix are ignored.
pub fn load(overrides: &Overrides, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    // Later duplicates win, as they would with setenv.
    let env: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();

    let named = match (&overrides.config, env.get(ENV_CONFIG)) {
        (Some(path), _) => Some((path.clone(), "--config")),
        (None, Some(path)) => Some((PathBuf::from(path), ENV_CONFIG)),
        (None, None) => None,
    };
    let (file_source, table) = match named {
        None => (String::new(), toml::Table::new()),
        Some((path, named_by)) => {
            let source = path.display().to_string();
            let table = match std::fs::read_to_string(&path) {
                Ok(text) => parse_table(&source, &text, &mut errors),
                Err(e) => {
                    errors.push(ConfigError::new(
                        named_by,
                        "config",
                        format!("cannot read {source:?}: {e}"),
                    ));
                    toml::Table::new()
                }
            };
            (source, table)
        }
    };

    resolve(file_source, &table, errors, &env, overrides)
}

/// Builds a configuration from file content alone (no environment, no flags); errors name
/// [`INLINE_SOURCE`] as their source.
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let table = parse_table(INLINE_SOURCE, toml, &mut errors);
    let no_env = BTreeMap::new();
    resolve(
        INLINE_SOURCE.to_string(),
        &table,
        errors,
        &no_env,
        &Overrides::default(),
    )
}

fn resolve<'a>(
    file_source: String,
    file: &'a toml::Table,
    errors: Vec<ConfigError>,
    env: &BTreeMap<&'a str, &'a str>,
    overrides: &'a Overrides,
) -> Result<Config, ConfigErrors> {
    let mut resolver = Resolver {
        file_source,
        file,
        env: BTreeMap::new(),
        flags: Vec::new(),
        errors,
    };
    for (&name, &value) in env.iter().filter(|(name, _)| **name != ENV_CONFIG) {
        match SETTINGS.iter().find(|key| env_var(key) == name) {
            Some(key) => {
                resolver.env.insert(key, (name, value));
            }
            None => {
                let key = name
                    .strip_prefix(ENV_PREFIX)
                    .unwrap_or(name)
                    .to_ascii_lowercase();
                let message = if key.starts_with("placements") {
                    "unknown setting (placements can only be set in the config file)"
                } else {
                    "unknown setting"
                };
                resolver.errors.push(ConfigError::new(name, &key, message));
            }
        }
    }
    if let Some(listen) = &overrides.listen {
        resolver.flags.push(("listen", Val::Text(listen)));
    }
    if let Some(campaigns) = &overrides.campaigns {
        resolver.flags.push(("campaigns", Val::Path(campaigns)));
    }
    if let Some(data) = &overrides.data {
        resolver.flags.push(("data", Val::Path(data)));
    }
    resolver.build()
}

/// Reports syntax errors by position only: the toml crate's own rendering quotes the
/// offending line, which may hold a secret.
fn parse_table(source: &str, text: &str, errors: &mut Vec<ConfigError>) -> toml::Table {
    text.parse::<toml::Table>().unwrap_or_else(|e| {
        let position = e.span().map(|span| {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        });
        let message = e.message().trim().replace('\n', "; ");
        let message = format!("{}{message}", position.unwrap_or_default());
        errors.push(ConfigError::new(source, "", message));
        toml::Table::new()
    })
}

/// A raw value from one layer, before coercion.
#[derive(Clone, Copy)]
enum Val<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
    Path(&'a Path),
}

struct Resolver<'a> {
    file_source: String,
    file: &'a toml::Table,
    env: BTreeMap<&'static str, (&'a str, &'a str)>,
    flags: Vec<(&'static str, Val<'a>)>,
    errors: Vec<ConfigError>,
}

impl<'a> Resolver<'a> {
    /// Every value given for `key` with its source name, highest layer (the winner) first.
    fn candidates(&self, key: &str) -> Vec<(String, Val<'a>)> {
        let flag = self.flags.iter().find(|(k, _)| *k == key);
        let flag = flag.map(|(_, value)| (format!("--{key}"), *value));
        let env = self
            .env
            .get(key)
            .map(|(name, value)| (name.to_string(), Val::Text(value)));
        let mut parts = key.split('.');
        let mut file = parts.next().and_then(|top| self.file.get(top));
        for part in parts {
            file = file.and_then(|v| v.as_table()?.get(part));
        }
        let file = file.map(|value| (self.file_source.clone(), Val::Toml(value)));
        [flag, env, file].into_iter().flatten().collect()
    }

    /// Resolves one setting. Shadowed values are checked too, so a broken file line is not
    /// discovered only when the variable masking it is removed. On errors the result is
    /// just a placeholder that lets the remaining settings be checked.
    fn get<T>(&mut self, key: &str, default: T, parse: impl Fn(Val<'a>) -> Parsed<T>) -> T {
        let mut winner = None;
        for (source, value) in self.candidates(key) {
            match parse(value) {
                Ok(parsed) => winner = winner.or(Some(parsed)),
                Err(message) => self.errors.push(ConfigError::new(&source, key, message)),
            }
        }
        winner.unwrap_or(default)
    }

    fn file_error(&mut self, key: &str, message: impl Into<String>) {
        let error = ConfigError::new(&self.file_source, key, message);
        self.errors.push(error);
    }

    fn build(mut self) -> Result<Config, ConfigErrors> {
        self.check_file_keys();
        let d = Config::default();
        let listen = self.get("listen", d.listen, parse_listen);
        let token_secret = self.get("token_secret", None, |v| parse_secret(v).map(Some));
        let identity_secret = self.get("identity_secret", None, |v| parse_secret(v).map(Some));
        if token_secret.is_some() && token_secret == identity_secret {
            // One key for two purposes would let a leak of either compromise both.
            if let Some((source, _)) = self.candidates("identity_secret").first() {
                let message = "must differ from token_secret";
                self.errors
                    .push(ConfigError::new(source, "identity_secret", message));
            }
        }
        let config = Config {
            listen,
            public_url: self.get("public_url", format!("http://{listen}"), parse_public_url),
            campaigns: self.get("campaigns", d.campaigns, as_path),
            data: self.get("data", d.data, as_path),
            currency: self.get("currency", d.currency, parse_currency),
            timezone: self.get("timezone", d.timezone, parse_timezone),
            admin_key: self.get("admin_key", None, |v| parse_admin_key(v).map(Some)),
            token_secret,
            identity_secret,
            allow_http_urls: self.get("allow_http_urls", d.allow_http_urls, as_bool),
            require_approval: self.get("require_approval", d.require_approval, as_bool),
            max_purchase_quantity: self.get(
                "max_purchase_quantity",
                d.max_purchase_quantity,
                |v| in_range(v, MAX_PURCHASE_QUANTITY_LIMIT.into()),
            ),
            max_body_bytes: self.get("max_body_bytes", d.max_body_bytes, positive),
            max_batch_body_bytes: self.get(
                "max_batch_body_bytes",
                d.max_batch_body_bytes,
                positive,
            ),
            max_items: self.get("max_items", d.max_items, positive),
            max_slots: self.get("max_slots", d.max_slots, |v| {
                in_range(v, MAX_SLOTS_LIMIT.into())
            }),
            header_read_timeout_ms: self.get(
                "header_read_timeout_ms",
                d.header_read_timeout_ms,
                positive,
            ),
            idle_timeout_ms: self.get("idle_timeout_ms", d.idle_timeout_ms, positive),
            max_connections: self.get("max_connections", d.max_connections, positive),
            shutdown_grace_ms: self.get("shutdown_grace_ms", d.shutdown_grace_ms, positive),
            decision_replay_secs: self.get(
                "decision_replay_secs",
                d.decision_replay_secs,
                positive,
            ),
            decision_replay_memory_mb: self.get(
                "decision_replay_memory_mb",
                d.decision_replay_memory_mb,
                positive,
            ),
            log_segment_bytes: self.get("log_segment_bytes", d.log_segment_bytes, positive),
            log_flush_interval_ms: self.get(
                "log_flush_interval_ms",
                d.log_flush_interval_ms,
                positive,
            ),
            log_queue_capacity: self.get("log_queue_capacity", d.log_queue_capacity, positive),
            log_queue_wait_ms: self.get("log_queue_wait_ms", d.log_queue_wait_ms, positive),
            impression_ttl_secs: self.get("impression_ttl_secs", d.impression_ttl_secs, positive),
            reservation_ttl_secs: self.get(
                "reservation_ttl_secs",
                d.reservation_ttl_secs,
                positive,
            ),
            max_profile_identifiers: self.get(
                "max_profile_identifiers",
                d.max_profile_identifiers,
                |v| in_range(v, 10_000),
            ),
            rate_limit_per_address: self.get(
                "rate_limit_per_address",
                d.rate_limit_per_address,
                |v| zero_or(v, 1_000_000),
            ),
            rate_limit_burst: self.get("rate_limit_burst", d.rate_limit_burst, |v| {
                in_range(v, 1_000_000)
            }),
            rate_limit_per_profile: self.get(
                "rate_limit_per_profile",
                d.rate_limit_per_profile,
                |v| zero_or(v, 1_000_000),
            ),
            min_render_ms: self.get("min_render_ms", d.min_render_ms, |v| zero_or(v, 60_000)),
            click_ttl_secs: self.get("click_ttl_secs", d.click_ttl_secs, positive),
            dedup_horizon_days: self.get("dedup_horizon_days", d.dedup_horizon_days, positive),
            checkpoint_interval_secs: self.get(
                "checkpoint_interval_secs",
                d.checkpoint_interval_secs,
                positive,
            ),
            log_retention_hours: self.get("log_retention_hours", None, |v| {
                in_range(v, 1_000_000).map(Some)
            }),
            log_decisions: self.get("log_decisions", true, as_bool),
            workers: self.get("workers", None, |v| {
                in_range(v, MAX_WORKERS as u64).map(Some)
            }),
            log_format: self.get("log_format", d.log_format, parse_log_format),
            log_level: self.get("log_level", d.log_level, |v| match as_str(v)?.trim() {
                "" => Err("must not be empty".to_string()),
                level => Ok(level.to_string()),
            }),
            default_consent: Consent {
                personalization: self.get("default_consent.personalization", true, as_bool),
                measurement: self.get("default_consent.measurement", true, as_bool),
            },
            trusted_proxies: self.get("trusted_proxies", d.trusted_proxies, parse_proxies),
            cors_allowed_origins: self.get(
                "cors_allowed_origins",
                d.cors_allowed_origins,
                parse_origins,
            ),
            demo: self.get("demo", listen.ip().is_loopback(), as_bool),
            inventory_seed: None,
            placements: self.placements(),
            nats: self.nats(),
            redis: self.redis(),
        };
        // The default seed is the campaign set's own, used only when it ships one; a
        // seed named explicitly must exist ("" seeds nothing).
        let default_seed =
            Some(config.campaigns.join(INVENTORY_SEED_IN_CAMPAIGNS)).filter(|p| p.is_file());
        let inventory_seed = self.get("inventory_seed", default_seed, parse_seed);
        let config = Config {
            inventory_seed,
            ..config
        };
        if self.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// Flags file keys that no setting reads; known keys are type-checked by `get`.
    fn check_file_keys(&mut self) {
        for (key, value) in self.file {
            if key == "placements" || SETTINGS.contains(&key.as_str()) {
                continue;
            }
            let children: Vec<&str> = SETTINGS
                .iter()
                .filter_map(|s| s.strip_prefix(key.as_str())?.strip_prefix('.'))
                .collect();
            match value.as_table() {
                _ if children.is_empty() => self.file_error(key, "unknown setting"),
                Some(table) => {
                    for child in table.keys().filter(|k| !children.contains(&k.as_str())) {
                        self.file_error(&format!("{key}.{child}"), "unknown setting");
                    }
                }
                None => self.file_error(key, expected("a table", value)),
            }
        }
    }

    /// The `[nats]` section: only with a `nats.url`, and only in a build with NATS.
    fn nats(&mut self) -> Option<crate::cluster::NatsConfig> {
        use crate::cluster::{self, parse_nats_name, parse_nats_url};
        let url = self.get("nats.url", None, |v| parse_nats_url(as_str(v)?).map(Some));
        let stream = self.get(
            "nats.stream",
            cluster::DEFAULT_NATS_STREAM.to_string(),
            |v| parse_nats_name(as_str(v)?),
        );
        let node_id = self.get("nats.node_id", None, |v| {
            parse_nats_name(as_str(v)?).map(Some)
        });
        let ack_wait_ms = self.get("nats.ack_wait_ms", cluster::DEFAULT_NATS_ACK_WAIT_MS, |v| {
            zero_or(v, cluster::MAX_NATS_ACK_WAIT_MS)
        });
        let Some(url) = url else {
            // A bad URL is reported already; only a missing one makes the rest meaningless.
            let missing = self.candidates("nats.url").is_empty();
            for key in ["nats.stream", "nats.node_id", "nats.ack_wait_ms"]
                .into_iter()
                .filter(|_| missing)
            {
                if let Some((source, _)) = self.candidates(key).into_iter().next() {
                    let message =
                        "needs nats.url (the other [nats] settings mean nothing without it)";
                    self.errors.push(ConfigError::new(&source, key, message));
                }
            }
            return None;
        };
        if !cluster::NATS_BUILT_IN {
            if let Some((source, _)) = self.candidates("nats.url").into_iter().next() {
                let message = "this build has no NATS support (build with `--features nats`)";
                self.errors
                    .push(ConfigError::new(&source, "nats.url", message));
            }
            return None;
        }
        Some(cluster::NatsConfig {
            url,
            stream,
            node_id,
            ack_wait_ms,
        })
    }

    /// The `[redis]` section: off unless `redis.url` is set; its other keys are checked
    /// either way, so a typo is found before the day Redis is switched on.
    fn redis(&mut self) -> Option<crate::cluster::RedisSettings> {
        use crate::cluster::RedisSettings as R;
        let d = R::default();
        let url = self.get("redis.url", String::new(), parse_redis_url);
        let settings = R {
            url: url.clone(),
            key_prefix: self.get("redis.key_prefix", d.key_prefix, |v| match as_str(v)? {
                p if p.len() > 64 || p.chars().any(|c| c.is_whitespace()) => {
                    Err("must be at most 64 characters, without spaces".to_string())
                }
                p => Ok(p.to_string()),
            }),
            timeout_ms: self.get("redis.timeout_ms", d.timeout_ms, |v| in_range(v, 60_000)),
            sync_interval_ms: self.get("redis.sync_interval_ms", d.sync_interval_ms, |v| {
                in_range(v, 10_000)
            }),
            lease_interval_ms: self.get("redis.lease_interval_ms", d.lease_interval_ms, |v| {
                in_range(v, 60_000)
            }),
            lease_percent: self.get("redis.lease_percent", d.lease_percent, |v| in_range(v, 100)),
            lease_min_micros: self.get("redis.lease_min_micros", d.lease_min_micros, |v| {
                in_range(v, 1_000_000_000_000)
            }),
            stream_max_len: self.get("redis.stream_max_len", d.stream_max_len, |v| {
                in_range(v, 1_000_000_000)
            }),
            stock_refresh_ms: self.get("redis.stock_refresh_ms", d.stock_refresh_ms, |v| {
                in_range(v, 60_000)
            }),
        };
        if url.is_empty() {
            return None;
        }
        if !cfg!(feature = "redis") {
            let source = self.candidates("redis.url").first().map(|(s, _)| s.clone());
            let message = "this build has no Redis support: build with `--features redis`";
            let source = source.unwrap_or_else(|| self.file_source.clone());
            self.errors
                .push(ConfigError::new(&source, "redis.url", message));
            return None;
        }
        Some(settings)
    }

    fn placements(&mut self) -> BTreeMap<String, PlacementRules> {
        let mut placements = BTreeMap::new();
        let table = match self.file.get("placements") {
            None => return placements,
            Some(toml::Value::Table(table)) => table,
            Some(other) => {
                self.file_error("placements", expected("a table", other));
                return placements;
            }
        };
        for (name, rules) in table {
            let key = format!("placements.{name}");
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            let rules = match rules {
                _ if !name_ok => {
                    let message = format!("invalid name {name:?}: use 1-64 of A-Z a-z 0-9 . _ -");
                    self.file_error("placements", message);
                    continue;
                }
                toml::Value::Table(rules) => rules,
                other => {
                    self.file_error(&key, expected("a table", other));
                    continue;
                }
            };
            let mut parsed = PlacementRules::default();
            for (field, value) in rules {
                let result = match field.as_str() {
                    "floor_ecpm" => parse_floor(value).map(|floor| parsed.floor_ecpm = floor),
                    "blocked_advertisers" => {
                        blocklist(value).map(|l| parsed.blocked_advertisers = l)
                    }
                    "blocked_categories" => blocklist(value).map(|l| parsed.blocked_categories = l),
                    "publishable_keys" => {
                        publishable_keys(value).map(|k| parsed.publishable_keys = k)
                    }
                    _ => Err("unknown setting".to_string()),
                };
                if let Err(message) = result {
                    self.file_error(&format!("{key}.{field}"), message);
                }
            }
            placements.insert(name.clone(), parsed);
        }
        placements
    }
}

/// A coerced value, or the message for a bad one (never including a secret).
type Parsed<T> = Result<T, String>;

/// A placement's publishable keys: 16 to 128 of `A-Z a-z 0-9 _ -` each, so they are
/// long enough not to be guessed and safe in a header.
fn publishable_keys(value: &toml::Value) -> Parsed<Vec<String>> {
    let list = value
        .as_array()
        .ok_or_else(|| expected("an array of strings", value))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let key = v
                .as_str()
                .ok_or_else(|| format!("[{i}]: {}", expected("a string", v)))?;
            let ok = (16..=128).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if ok {
                Ok(key.to_string())
            } else {
                Err(format!("[{i}]: a key is 16-128 of A-Z a-z 0-9 _ -"))
            }
        })
        .collect()
}

fn expected(what: &str, found: &toml::Value) -> String {
    format!("expected {what}, found {}", found.type_str())
}

fn as_str(value: Val<'_>) -> Parsed<&str> {
    match value {
        Val::Toml(toml::Value::String(s)) => Ok(s),
        Val::Text(s) => Ok(s),
        Val::Path(p) => p.to_str().ok_or_else(|| "must be valid UTF-8".to_string()),
        Val::Toml(other) => Err(expected("a string", other)),
    }
}

fn as_path(value: Val<'_>) -> Parsed<PathBuf> {
    let path = match value {
        Val::Path(p) => p.to_path_buf(),
        other => PathBuf::from(as_str(other)?),
    };
    if path.as_os_str().is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(path)
}

fn as_bool(value: Val<'_>) -> Parsed<bool> {
    match value {
        Val::Toml(toml::Value::Boolean(b)) => Ok(*b),
        Val::Toml(other) => Err(expected("a boolean", other)),
        other => match as_str(other)? {
            "1" => Ok(true),
            "0" => Ok(false),
            s if s.eq_ignore_ascii_case("true") => Ok(true),
            s if s.eq_ignore_ascii_case("false") => Ok(false),
            s => Err(format!("expected true, false, 1 or 0, found {s:?}")),
        },
    }
}

fn positive<T: TryFrom<u64>>(value: Val<'_>) -> Parsed<T> {
    in_range(value, u64::MAX)
}

/// An integer in `1..=max` that also fits the setting's type.
fn in_range<T: TryFrom<u64>>(value: Val<'_>, max: u64) -> Parsed<T> {
    // Parsed wide so that "-5" is reported as out of range rather than as not a number.
    let n: i128 = match value {
        Val::Toml(toml::Value::Integer(i)) => i128::from(*i),
        Val::Toml(other) => return Err(expected("an integer", other)),
        other => {
            let s = as_str(other)?;
            s.parse()
                .map_err(|_| format!("expected an integer, found {s:?}"))?
        }
    };
    if n < 1 {
        return Err("must be greater than 0".to_string());
    }
    u64::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("must be at most {max}"))
}

/// 0 (off) or an integer in `1..=max`.
fn zero_or<T: TryFrom<u64> + Default>(value: Val<'_>, max: u64) -> Parsed<T> {
    let zero = match &value {
        Val::Toml(toml::Value::Integer(0)) => true,
        Val::Toml(_) => false,
        other => as_str(*other).is_ok_and(|s| s.trim() == "0"),
    };
    if zero {
        Ok(T::default())
    } else {
        in_range(value, max)
    }
}

/// A TOML array of strings, or a comma-separated string from the environment.
fn as_list(value: Val<'_>) -> Parsed<Vec<&str>> {
    match value {
        Val::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| expected("strings", item)))
            .collect(),
        Val::Toml(other) => Err(expected("an array of strings", other)),
        other => {
            let items = as_str(other)?.split(',').map(str::trim);
            Ok(items.filter(|s| !s.is_empty()).collect())
        }
    }
}

fn parse_listen(value: Val<'_>) -> Parsed<SocketAddr> {
    let s = as_str(value)?;
    s.parse()
        .map_err(|_| format!("not a socket address: {s:?}"))
}

fn parse_public_url(value: Val<'_>) -> Parsed<String> {
    let url = as_str(value)?;
    let rest = ["http://", "https://"]
        .iter()
        .find(|scheme| {
            url.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        })
        .and_then(|scheme| url.get(scheme.len()..))
        .ok_or_else(|| format!("must start with http:// or https://, found {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if url.contains(['?', '#']) {
        Err(format!("must not have a query or fragment, found {url:?}"))
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("must not contain whitespace, found {url:?}"))
    } else if host.is_empty() || host.starts_with(':') {
        Err(format!("must include a host, found {url:?}"))
    } else {
        Ok(url.trim_end_matches('/').to_string())
    }
}

fn parse_currency(value: Val<'_>) -> Parsed<String> {
    match as_str(value)? {
        s if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(s.to_ascii_uppercase())
        }
        s => Err(format!("must be a three-letter ISO 4217 code, found {s:?}")),
    }
}

fn parse_timezone(value: Val<'_>) -> Parsed<Tz> {
    let s = as_str(value)?;
    s.parse()
        .map_err(|_| format!("not an IANA time zone name: {s:?}"))
}

fn parse_admin_key(value: Val<'_>) -> Parsed<String> {
    match as_str(value)? {
        s if s.chars().any(char::is_whitespace) => Err("must not contain whitespace".to_string()),
        s if s.chars().count() < MIN_ADMIN_KEY_CHARS => {
            Err(format!("must be at least {MIN_ADMIN_KEY_CHARS} characters"))
        }
        s => Ok(s.to_string()),
    }
}

/// 64 hex digits. Messages never include the value: a near-miss is still mostly the secret.
fn parse_secret(value: Val<'_>) -> Parsed<[u8; 32]> {
    let bad = || "must be 64 hex characters (32 bytes), e.g. `openssl rand -hex 32`".to_string();
    let hex = as_str(value)?.as_bytes();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Ok(secret)
}

/// A Redis URL (`redis://`, `rediss://` or `unix://`); empty leaves Redis off. Never
/// quoted back: it may carry a password.
fn parse_redis_url(value: Val<'_>) -> Parsed<String> {
    let url = as_str(value)?.trim();
    let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
    if url.is_empty()
        || schemes
            .iter()
            .any(|s| url.starts_with(s) && url.len() > s.len())
    {
        Ok(url.to_string())
    } else {
        Err("expected a URL like redis://host:6379/0 (redis://, rediss:// or unix://)".to_string())
    }
}

fn parse_log_format(value: Val<'_>) -> Parsed<LogFormat> {
    match as_str(value)? {
        s if s.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
        s if s.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
        s => Err(format!("must be \"text\" or \"json\", found {s:?}")),
    }
}

/// Reports every bad entry, not just the first.
fn parse_proxies(value: Val<'_>) -> Parsed<Vec<IpNet>> {
    let (nets, bad): (Vec<_>, Vec<_>) = as_list(value)?
        .into_iter()
        .map(str::parse)
        .partition(Result::is_ok);
    let bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    Ok(nets.into_iter().filter_map(Result::ok).collect())
}

/// `["*"]`, or origins such as `https://shop.example` (scheme, host, optional port, no
/// path). Every bad entry is reported, each with its index.
fn parse_origins(value: Val<'_>) -> Parsed<AllowedOrigins> {
    let items = as_list(value)?;
    if items.iter().any(|s| s.trim() == "*") {
        return if items.len() == 1 {
            Ok(AllowedOrigins::Any)
        } else {
            Err("\"*\" already allows every origin: list it alone".to_string())
        };
    }
    let (origins, bad): (Vec<_>, Vec<_>) = items
        .iter()
        .enumerate()
        .map(|(i, s)| parse_origin(s.trim()).map_err(|e| format!("[{i}] {s:?}: {e}")))
        .partition(Result::is_ok);
    if !bad.is_empty() {
        let bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
        return Err(bad.join("; "));
    }
    Ok(AllowedOrigins::List(
        origins.into_iter().filter_map(Result::ok).collect(),
    ))
}

/// One origin, normalised the way a browser writes its `Origin` header: lower-case,
/// without the scheme's default port.
fn parse_origin(s: &str) -> Result<String, &'static str> {
    let lower = s.to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .filter(|(scheme, _)| ["http", "https"].contains(scheme))
        .ok_or("an origin starts with http:// or https://")?;
    if rest.contains(['/', '?', '#']) {
        return Err("an origin is scheme://host[:port], without a path (not even a trailing /)");
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal's own colons sit inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && !host.contains('@')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !host_ok {
        return Err("the host is missing or not a host name");
    }
    match port {
        None => Ok(format!("{scheme}://{host}")),
        // `u16::from_str` takes a leading `+`, which no browser writes.
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                let p = n;
                let default = if scheme == "https" { 443 } else { 80 };
                if p == default {
                    Ok(format!("{scheme}://{host}"))
                } else {
                    Ok(format!("{scheme}://{host}:{p}"))
                }
            }
            _ => Err("the port is not a number from 1 to 65535"),
        },
    }
}

/// A seed file that must exist, or `""` for none.
fn parse_seed(value: Val<'_>) -> Parsed<Option<PathBuf>> {
    if as_str(value).is_ok_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    let path = as_path(value)?;
    if path.is_file() {
        Ok(Some(path))
    } else {
        Err(format!("no such file: {:?}", path.display().to_string()))
    }
}

fn parse_floor(value: &toml::Value) -> Parsed<Micros> {
    match value {
        toml::Value::Integer(i) => Micros::from_major(*i as f64),
        toml::Value::Float(f) => Micros::from_major(*f),
        _ => None,
    }
    .ok_or_else(|| "must be a non-negative number".to_string())
}

fn blocklist(value: &toml::Value) -> Parsed<Vec<String>> {
    let items = as_list(Val::Toml(value))?;
    if items.iter().any(|s| s.trim().is_empty()) {
        return Err("entries must not be empty".to_string());
    }
    Ok(items.iter().map(|s| s.trim().to_lowercase()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config_file(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(content.as_bytes()).expect("write temp file");
        file
    }

    fn errors_of(result: Result<Config, ConfigErrors>) -> ConfigErrors {
        result.expect_err("configuration should be rejected")
    }

    fn keys(errors: &ConfigErrors) -> Vec<(&str, &str)> {
        errors
            .0
            .iter()
            .map(|e| (e.source.as_str(), e.key.as_str()))
            .collect()
    }

    fn with_file(file: &tempfile::NamedTempFile) -> Overrides {
        let config = Some(file.path().to_path_buf());
        Overrides {
            config,
            ..Overrides::default()
        }
    }

    #[test]
    fn nothing_configured_gives_the_documented_defaults() {
        let unrelated = env(&[("PATH", "/bin"), ("HOME", "/root")]);
        let config = load(&Overrides::default(), &unrelated).expect("defaults are valid");
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert_eq!(config.campaigns, PathBuf::from("./campaigns"));
        assert_eq!(config.data, PathBuf::from("./data"));
        assert_eq!(config.currency, "USD");
        assert_eq!(config.timezone, chrono_tz::UTC);
        assert!(config.admin_key.is_none() && config.token_secret.is_none());
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.max_slots, 10);
        assert_eq!(config.decision_replay_secs, 86_400);
        assert_eq!(config.decision_replay_memory_mb, 512);
        assert_eq!(config.workers, None);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.default_consent, DEFAULT_CONSENT);
        assert!(config.default_consent.personalization && config.default_consent.measurement);
        assert!(config.trusted_proxies.is_empty() && config.placements.is_empty());
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let file = config_file("listen = \"127.0.0.1:1001\"\n");
        let in_file = with_file(&file);
        let env_listen = env(&[("AFTERCART_LISTEN", "127.0.0.1:1002")]);
        let flag = Overrides {
            listen: Some("127.0.0.1:1003".into()),
            ..in_file.clone()
        };

        let port = |overrides: &Overrides, env: &[(String, String)]| {
            load(overrides, env).expect("valid").listen.port()
        };
        assert_eq!(port(&in_file, &[]), 1001);
        assert_eq!(port(&in_file, &env_listen), 1002);
        assert_eq!(port(&flag, &env_listen), 1003);
    }

    #[test]
    fn shadowed_bad_values_are_still_reported() {
        let file = config_file("listen = \"localhost\"\n");
        let path = file.path().display().to_string();
        let errors = errors_of(load(
            &with_file(&file),
            &env(&[("AFTERCART_LISTEN", "127.0.0.1:1")]),
        ));
        assert_eq!(keys(&errors), [(path.as_str(), "listen")]);
    }

    #[test]
    fn config_file_can_be_named_by_environment() {
        let file = config_file("currency = \"eur\"\n");
        let path = file.path().to_string_lossy().into_owned();
        let config =
            load(&Overrides::default(), &env(&[("AFTERCART_CONFIG", &path)])).expect("valid");
        assert_eq!(config.currency, "EUR");
    }

    #[test]
    fn public_url_defaults_to_the_final_listen_address() {
        let flags = Overrides {
            listen: Some("0.0.0.0:9000".into()),
            ..Overrides::default()
        };
        let config = load(&flags, &env(&[("AFTERCART_LISTEN", "127.0.0.1:1")])).expect("valid");
        assert_eq!(config.public_url, "http://0.0.0.0:9000");

        let config = from_toml_str("public_url = \"https://ads.example.com/\"").expect("valid");
        assert_eq!(config.public_url, "https://ads.example.com");
        for bad in [
            "ads.example.com",
            "https://",
            "https://x.com/?a=1",
            "ftp://x.com",
        ] {
            let errors = errors_of(from_toml_str(&format!("public_url = {bad:?}")));
            assert_eq!(keys(&errors), [(INLINE_SOURCE, "public_url")], "{bad}");
        }
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let file = config_file(
            r#"
            currency = "US$"
            lsiten = "0.0.0.0:80"
            [placements.order_confirmation]
            floor_ecpm = -1.0
            "#,
        );
        let path = file.path().display().to_string();
        let env = env(&[("AFTERCART_LISTEN", "nope"), ("AFTERCART_BOGUS", "1")]);

        let errors = errors_of(load(&with_file(&file), &env));
        let mut found = keys(&errors);
        found.sort();
        let mut expected = vec![
            ("AFTERCART_BOGUS", "bogus"),
            ("AFTERCART_LISTEN", "listen"),
            (path.as_str(), "currency"),
            (path.as_str(), "lsiten"),
            (path.as_str(), "placements.order_confirmation.floor_ecpm"),
        ];
        expected.sort();
        assert_eq!(found, expected);

        let text = errors.to_string();
        assert_eq!(text.lines().count(), 5);
        assert!(
            text.contains("AFTERCART_LISTEN: not a socket address: \"nope\""),
            "{text}"
        );
        assert!(text.contains("AFTERCART_BOGUS: unknown setting"), "{text}");
        assert!(
            text.contains(&format!(
                "{path}: placements.order_confirmation.floor_ecpm: must be a non-negative number"
            )),
            "{text}"
        );
    }

    #[test]
    fn secrets_are_never_echoed() {
        let admin_key = "hunter2 hunter2";
        let token = "g".repeat(64);
        let errors = errors_of(load(
            &Overrides::default(),
            &env(&[
                ("AFTERCART_ADMIN_KEY", admin_key),
                ("AFTERCART_TOKEN_SECRET", &token),
            ]),
        ));
        assert_eq!(keys(&errors).len(), 2);
        for rendered in [errors.to_string(), format!("{errors:?}")] {
            assert!(
                !rendered.contains(admin_key) && !rendered.contains("hunter2"),
                "{rendered}"
            );
            assert!(!rendered.contains(&token), "{rendered}");
        }

        // Nor by a syntax error on the secret's line, nor by logging the loaded config.
        let errors = errors_of(from_toml_str("admin_key = \"hunter2hunter2hunter2\nx = 1"));
        assert!(!errors.to_string().contains("hunter2"), "{errors}");
        let config = from_toml_str(&format!(
            "admin_key = \"hunter2hunter2hunter2\"\ntoken_secret = \"{}\"",
            "ab".repeat(32)
        ))
        .expect("valid");
        assert_eq!(config.token_secret, Some([0xab; 32]));
        let logged = format!("{config:?}");
        assert!(
            !logged.contains("hunter2") && !logged.contains("171"),
            "{logged}"
        );
    }

    #[test]
    fn token_and_identity_secrets_must_differ() {
        let secret = "0f".repeat(32);
        let toml = format!("token_secret = \"{secret}\"\nidentity_secret = \"{secret}\"");
        assert_eq!(
            keys(&errors_of(from_toml_str(&toml))),
            [(INLINE_SOURCE, "identity_secret")]
        );
    }

    #[test]
    fn trusted_proxies_match_by_cidr() {
        let vars = env(&[(
            "AFTERCART_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7,2001:db8::/32",
        )]);
        let proxies = load(&Overrides::default(), &vars)
            .expect("valid")
            .trusted_proxies;
        let trusted = |ip: &str| {
            proxies
                .iter()
                .any(|net| net.contains(ip.parse().expect("ip")))
        };
        assert!(trusted("10.200.3.4") && trusted("192.168.1.7") && trusted("2001:db8::1"));
        assert!(
            trusted("::ffff:10.1.2.3"),
            "IPv4-mapped peers are matched as IPv4"
        );
        assert!(!trusted("11.0.0.1") && !trusted("192.168.1.8") && !trusted("2001:db9::1"));
        assert!(!trusted("::a00:1"), "an IPv6 address is not an IPv4 one");

        let any: IpNet = "0.0.0.0/0".parse().expect("valid");
        assert!(any.contains("8.8.8.8".parse().expect("ip")));
        assert!(!any.contains("::1".parse().expect("ip")));
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().expect("valid");
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
            "10.0.0",
            "host",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        let errors = errors_of(from_toml_str(
            "trusted_proxies = [\"10.0.0.0/8\", \"nope\"]",
        ));
        assert!(errors.to_string().contains("\"nope\""), "{errors}");
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let missing = PathBuf::from("/nonexistent/aftercart.toml");
        let flag = Overrides {
            config: Some(missing.clone()),
            ..Overrides::default()
        };
        assert_eq!(keys(&errors_of(load(&flag, &[]))), [("--config", "config")]);
        let vars = env(&[("AFTERCART_CONFIG", "/nonexistent/aftercart.toml")]);
        let errors = errors_of(load(&Overrides::default(), &vars));
        assert_eq!(keys(&errors), [("AFTERCART_CONFIG", "config")]);
        assert!(
            errors.to_string().contains("/nonexistent/aftercart.toml"),
            "{errors}"
        );
    }

    #[test]
    fn placement_rules_are_parsed_and_checked() {
        let config = from_toml_str(
            r#"
            [placements.order_confirmation]
            floor_ecpm = 5.0
            blocked_advertisers = ["ACME"]
            blocked_categories = ["Gambling"]
            publishable_keys = ["pk_shop_0123456789abcdef", "pk_shop_rotated_0123456789"]
            [placements."pos.receipt"]
            floor_ecpm = 2
            "#,
        )
        .expect("valid");
        let rules = config.placement("order_confirmation").expect("defined");
        assert_eq!(rules.floor_ecpm, Micros(5_000_000));
        assert_eq!(rules.blocked_advertisers, ["acme"]);
        assert_eq!(rules.blocked_categories, ["gambling"]);
        assert_eq!(rules.publishable_keys.len(), 2);
        assert_eq!(
            config.placement("pos.receipt").map(|r| r.floor_ecpm),
            Some(Micros(2_000_000))
        );
        assert_eq!(config.placement("elsewhere"), None);

        let errors = errors_of(from_toml_str(
            r#"
            [placements."bad name"]
            [placements.thanks]
            floor = 1.0
            blocked_categories = "gambling"
            [placements.receipt]
            publishable_keys = ["short"]
            [placements.app]
            publishable_keys = ["pk with spaces in it, sadly"]
            "#,
        ));
        assert_eq!(
            keys(&errors),
            [
                (INLINE_SOURCE, "placements.app.publishable_keys"),
                (INLINE_SOURCE, "placements"),
                (INLINE_SOURCE, "placements.receipt.publishable_keys"),
                (INLINE_SOURCE, "placements.thanks.blocked_categories"),
                (INLINE_SOURCE, "placements.thanks.floor"),
            ]
        );
    }

    #[test]
    fn environment_strings_are_coerced() {
        let vars = env(&[
            ("AFTERCART_ALLOW_HTTP_URLS", "1"),
            ("AFTERCART_DEFAULT_CONSENT_PERSONALIZATION", "false"),
            ("AFTERCART_MAX_SLOTS", "64"),
            ("AFTERCART_WORKERS", "4"),
            ("AFTERCART_LOG_FORMAT", "json"),
            ("AFTERCART_TIMEZONE", "Europe/Berlin"),
        ]);
        let config = load(&Overrides::default(), &vars).expect("valid");
        assert!(config.allow_http_urls);
        assert_eq!(
            config.default_consent,
            Consent {
                personalization: false,
                measurement: true
            }
        );
        assert_eq!((config.max_slots, config.workers), (64, Some(4)));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.timezone, chrono_tz::Europe::Berlin);

        let vars = env(&[
            ("AFTERCART_ALLOW_HTTP_URLS", "yes"),
            ("AFTERCART_MAX_SLOTS", "65"),
            ("AFTERCART_MAX_ITEMS", "0"),
            ("AFTERCART_WORKERS", "-1"),
            ("AFTERCART_TIMEZONE", "Mars/Olympus"),
        ]);
        assert_eq!(
            keys(&errors_of(load(&Overrides::default(), &vars))).len(),
            5
        );
    }

    #[test]
    fn file_values_are_type_checked_and_unknown_nested_keys_rejected() {
        let errors = errors_of(from_toml_str(
            r#"
            max_items = "100"
            allow_http_urls = "true"
            [default_consent]
            personalisation = false
            "#,
        ));
        let rendered = errors.to_string();
        assert!(
            rendered.contains("config: max_items: expected an integer, found string"),
            "{rendered}"
        );
        assert!(
            rendered.contains("config: allow_http_urls: expected a boolean"),
            "{rendered}"
        );
        assert!(
            rendered.contains("config: default_consent.personalisation: unknown setting"),
            "{rendered}"
        );
        assert_eq!(errors.0.len(), 3);
    }
    #[test]
    fn cors_origins_are_normalised_and_every_bad_one_named() {
        assert_eq!(
            from_toml_str("").expect("valid").cors_allowed_origins,
            AllowedOrigins::Any
        );
        let config = from_toml_str(
            r#"cors_allowed_origins = ["HTTPS://Shop.Example:443", "http://localhost:3000", "http://[::1]:8080", "http://a.example:80"]"#,
        )
        .expect("valid");
        assert_eq!(
            config.cors_allowed_origins,
            AllowedOrigins::List(vec![
                "https://shop.example".into(),
                "http://localhost:3000".into(),
                "http://[::1]:8080".into(),
                "http://a.example".into(),
            ])
        );
        assert!(config.cors_allowed_origins.allows("https://shop.example"));
        assert!(
            !config
                .cors_allowed_origins
                .allows("https://shop.example.evil")
        );
        assert!(!config.cors_allowed_origins.allows("http://shop.example"));

        let vars = env(&[(
            "AFTERCART_CORS_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        )]);
        let origins = load(&Overrides::default(), &vars)
            .expect("valid")
            .cors_allowed_origins;
        assert_eq!(
            origins,
            AllowedOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
        let none = from_toml_str("cors_allowed_origins = []").expect("valid");
        assert_eq!(none.cors_allowed_origins, AllowedOrigins::List(Vec::new()));

        let errors = errors_of(from_toml_str(
            r#"cors_allowed_origins = ["https://ok.example", "shop.example", "https://shop.example/", "https://x.example:99999", "ftp://x.example", "https://x.example:+80"]"#,
        ));
        assert_eq!(keys(&errors), [(INLINE_SOURCE, "cors_allowed_origins")]);
        let text = errors.to_string();
        for bad in [
            "[1] \"shop.example\"",
            "[2] \"https://shop.example/\": an origin is scheme://host[:port], without a path",
            "[3]",
            "[4]",
            "[5]",
        ] {
            assert!(text.contains(bad), "{bad} in {text}");
        }
        assert!(!text.contains("[0]"), "{text}");
        let errors = errors_of(from_toml_str(
            r#"cors_allowed_origins = ["*", "https://a.example"]"#,
        ));
        assert!(errors.to_string().contains("list it alone"), "{errors}");
        let errors = errors_of(from_toml_str(r#"cors_allowed_origins = "*""#));
        assert!(errors.to_string().contains("expected an array"), "{errors}");
    }

    #[test]
    fn the_demo_is_served_only_on_loopback_unless_configured() {
        assert!(from_toml_str("").expect("valid").demo);
        assert!(
            from_toml_str("listen = \"[::1]:9000\"")
                .expect("valid")
                .demo
        );
        assert!(
            !from_toml_str("listen = \"0.0.0.0:80\"")
                .expect("valid")
                .demo
        );
        assert!(
            from_toml_str("listen = \"0.0.0.0:80\"\ndemo = true")
                .expect("valid")
                .demo
        );
        assert!(!from_toml_str("demo = false").expect("valid").demo);
    }

    #[test]
    fn the_inventory_seed_defaults_to_the_campaign_sets_own() {
        let campaigns = tempfile::tempdir().expect("temp dir");
        let toml = format!("campaigns = {:?}", campaigns.path().display().to_string());
        assert_eq!(from_toml_str(&toml).expect("valid").inventory_seed, None);
        let seed = campaigns.path().join(INVENTORY_SEED_IN_CAMPAIGNS);
        std::fs::create_dir_all(seed.parent().expect("parent")).expect("mkdir");
        std::fs::write(&seed, "[]").expect("write");
        assert_eq!(
            from_toml_str(&toml).expect("valid").inventory_seed,
            Some(seed.clone())
        );
        // "" turns the default off; a named file must exist.
        let off = format!("{toml}\ninventory_seed = \"\"");
        assert_eq!(from_toml_str(&off).expect("valid").inventory_seed, None);
        let named = format!("inventory_seed = {:?}", seed.display().to_string());
        assert_eq!(
            from_toml_str(&named).expect("valid").inventory_seed,
            Some(seed)
        );
        let errors = errors_of(from_toml_str("inventory_seed = \"/nonexistent/seed.json\""));
        assert_eq!(keys(&errors), [(INLINE_SOURCE, "inventory_seed")]);
        assert!(errors.to_string().contains("no such file"), "{errors}");
    }

    #[test]
    fn the_redis_section_is_off_by_default_and_checked_whole() {
        assert_eq!(Config::default().redis, None);
        assert_eq!(from_toml_str("").expect("valid").redis, None);
        // Its other keys are checked even while it is off.
        let errors = errors_of(from_toml_str(
            "[redis]\nurl = \"http://x\"\nlease_percent = 0\ntimeout_ms = \"soon\"\nleases = 3",
        ));
        assert_eq!(
            keys(&errors),
            [
                (INLINE_SOURCE, "redis.leases"),
                (INLINE_SOURCE, "redis.url"),
                (INLINE_SOURCE, "redis.timeout_ms"),
                (INLINE_SOURCE, "redis.lease_percent"),
            ]
        );
        let secret = "[redis]\nurl = \"redis://:hunter2@cache:6379/0\"";
        if cfg!(feature = "redis") {
            let r = from_toml_str(secret).expect("valid").redis.expect("on");
            assert_eq!(r.url, "redis://:hunter2@cache:6379/0");
            assert_eq!(r.key_prefix, "aftercart:");
            assert!(!format!("{r:?}").contains("hunter2"), "never printed");
            let env = env(&[("AFTERCART_REDIS_URL", "redis://localhost/")]);
            let r = load(&Overrides::default(), &env).expect("valid").redis;
            assert_eq!(r.expect("on").url, "redis://localhost/");
        } else {
            let errors = errors_of(from_toml_str(secret));
            assert_eq!(keys(&errors), [(INLINE_SOURCE, "redis.url")]);
            assert!(errors.to_string().contains("--features redis"), "{errors}");
            assert!(!errors.to_string().contains("hunter2"));
        }
    }
}
