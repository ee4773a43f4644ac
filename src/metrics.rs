//! Prometheus metrics. Labels are bounded sets (channel, outcome, kind): per-campaign
//! and per-profile figures belong to stats and reports, not to a time-series database.

use crate::campaign::{Channel, CreativeKind};
use crate::exposure::LogMetrics;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric the server exports, registered in its own registry so that tests can
/// run several servers in one process.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub decision_seconds: HistogramVec,
    pub decisions: IntCounterVec,
    pub offers: IntCounterVec,
    pub campaigns_loaded: IntGauge,
    pub http_requests: IntCounterVec,
    pub connections_open: IntGauge,
    pub connections_refused: IntCounterVec,
    pub events: IntCounterVec,
    /// Offers a campaign could not take, by reason (caps, budget, pacing, holdout...).
    pub offers_skipped: IntCounterVec,
    /// Identity links refused because a profile would have grown past its bound.
    pub identity_links_refused: IntCounter,
    /// Identifiers and profiles in the identity graph.
    pub identity_identifiers: IntGauge,
    pub identity_profiles: IntGauge,
    pub replay_bytes: IntGauge,
    pub log: LogMetrics,
    /// The series every decision touches, resolved once.
    pub hot: HotSeries,
}

/// Series resolved once at start for the labels every decision uses: resolving a label
/// set hashes the labels and takes a lock on each call, which showed in profiles. By
/// `Channel as usize` (and `CreativeKind`); the series also exist from the start, at 0,
/// as Prometheus prefers.
#[derive(Clone)]
pub struct HotSeries {
    pub decision_seconds: [Histogram; 3],
    /// Outcomes `fill` and `nofill`.
    pub filled: [IntCounter; 3],
    pub nofill: [IntCounter; 3],
    pub offers: [[IntCounter; 2]; 3],
    /// `http_requests_total{route="decisions",class="2xx"}`.
    pub decisions_2xx: IntCounter,
}

impl HotSeries {
    fn resolve(
        decision_seconds: &HistogramVec,
        decisions: &IntCounterVec,
        offers: &IntCounterVec,
        http_requests: &IntCounterVec,
    ) -> HotSeries {
        // In `Channel as usize` order, whatever order `ALL` lists them in.
        let mut channels = Channel::ALL;
        channels.sort_by_key(|c| *c as usize);
        HotSeries {
            decision_seconds: channels.map(|c| decision_seconds.with_label_values(&[c.as_str()])),
            filled: channels.map(|c| decisions.with_label_values(&[c.as_str(), "fill"])),
            nofill: channels.map(|c| decisions.with_label_values(&[c.as_str(), "nofill"])),
            offers: channels.map(|c| {
                [CreativeKind::Offer, CreativeKind::Product]
                    .map(|k| offers.with_label_values(&[c.as_str(), k.as_str()]))
            }),
            decisions_2xx: http_requests.with_label_values(&["decisions", "2xx"]),
        }
    }
}

/// Decision latency buckets: tens of microseconds up to the point where a checkout
/// page has given up.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,
];

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and labels are constants in this file; a failure is a programming
    // error caught by the first test that builds a server.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("aftercart".into()), None)
            .unwrap_or_else(|_| Registry::new());
        let decision_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "decision_duration_seconds",
                "Time to answer POST /v1/decisions, from body read to response built.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["channel"],
        ));
        let decisions = must(IntCounterVec::new(
            Opts::new(
                "decisions_total",
                "Decisions by channel and outcome (fill, nofill, replay, test, invalid).",
            ),
            &["channel", "outcome"],
        ));
        let offers = must(IntCounterVec::new(
            Opts::new(
                "offers_total",
                "Offers served by channel and creative kind.",
            ),
            &["channel", "kind"],
        ));
        let campaigns_loaded = must(IntGauge::new(
            "campaigns_loaded",
            "Campaigns in the published snapshot.",
        ));
        let http_requests = must(IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route and status class.",
            ),
            &["route", "status"],
        ));
        let connections_open = must(IntGauge::new(
            "connections_open",
            "Open client connections.",
        ));
        let connections_refused = must(IntCounterVec::new(
            Opts::new(
                "connections_refused_total",
                "Connections closed at once, by reason.",
            ),
            &["reason"],
        ));
        let events = must(IntCounterVec::new(
            Opts::new(
                "events_total",
                "Counted tracking events and conversions by kind.",
            ),
            &["kind"],
        ));
        let offers_skipped = must(IntCounterVec::new(
            Opts::new(
                "offers_skipped_total",
                "Offers a campaign could not take, by reason: frequency_caps, exclude_purchasers, budget, pacing, holdout.",
            ),
            &["reason"],
        ));
        let identity_links_refused = must(IntCounter::new(
            "identity_links_refused_total",
            "Identity links refused because a profile would exceed max_profile_identifiers.",
        ));
        let identity_identifiers = must(IntGauge::new(
            "identity_identifiers",
            "Identifiers in the identity graph (updated at checkpoints).",
        ));
        let identity_profiles = must(IntGauge::new(
            "identity_profiles",
            "Profiles in the identity graph (updated at checkpoints).",
        ));
        let replay_bytes = must(IntGauge::new(
            "decision_replay_bytes",
            "Memory held by decisions kept for replays, estimated (updated at checkpoints).",
        ));
        for c in [
            Box::new(offers_skipped.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(replay_bytes.clone()),
            Box::new(identity_links_refused.clone()),
            Box::new(identity_identifiers.clone()),
            Box::new(identity_profiles.clone()),
            Box::new(decision_seconds.clone()),
            Box::new(decisions.clone()),
            Box::new(offers.clone()),
            Box::new(campaigns_loaded.clone()),
            Box::new(http_requests.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_refused.clone()),
            Box::new(events.clone()),
        ] {
            must(registry.register(c));
        }
        let log = must(LogMetrics::register(&registry));
        let hot = HotSeries::resolve(&decision_seconds, &decisions, &offers, &http_requests);
        Metrics {
            hot,
            registry,
            decision_seconds,
            decisions,
            offers,
            campaigns_loaded,
            http_requests,
            connections_open,
            connections_refused,
            events,
            offers_skipped,
            identity_links_refused,
            identity_identifiers,
            identity_profiles,
            replay_bytes,
            log,
        }
    }

    /// Adds metrics of an optional part (the fleet's backends) to the registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every metric.
    /// The registry, for parts that register their own series (the fleet's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which the
        // registry refuses at registration.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
