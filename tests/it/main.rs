//! aftercart's integration tests, in one binary: every test starts a real server on
//! port 0 (in-process, or the real `aftercart` binary) and talks HTTP to it.
//!
//! - `crash`: kill -9 during conversions, torn tails, graceful stops: nothing acknowledged is lost.
//! - `decisions`: offers on every channel from the sample set, codecs, replays, explain and preview.
//! - `delivery`: one profile across channels, caps, budgets and pacing over simulated days, suppression, holdouts, learned CTR.
//! - `targeting`: every targeting predicate matching and not matching.
//! - `slots`: multi-slot walks, advertiser and competitive separation, ranking, floors and blocklists.
//! - `bad_input`: malformed, wrong-typed, oversized and hostile requests get precise 4xx errors.
//! - `exposure`: the exposure log, impressions, clicks, conversions, crash safety and readers.
//! - `management`: keys and roles on every management endpoint, the campaigns API, approval, restarts, the audit trail.
//! - `inventory`: stock per location, product offers, in-unit purchases that never oversell.
//! - `privacy`: subject access, erasure everywhere (graph, caps, readers, restarts), no raw e-mail on disk.
//! - `traffic`: rate limits per address and profile, trusted proxies, bots and too-fast impressions are never charged.
//! - `checkout`: CORS on public endpoints only, the SDK's caching and SRI (and the README's copy of it), the demo page, the sample stock seed.
//! - `lifecycle`: configuration errors, start-up refusal, validate, health and metrics, graceful shutdown.

mod bad_input;
mod checkout;
mod crash;
mod decisions;
mod delivery;
mod exposure;
mod inventory;
mod lifecycle;
mod management;
mod privacy;
mod slots;
mod support;
mod targeting;
mod traffic;
