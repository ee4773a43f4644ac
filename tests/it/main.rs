//! aftercart's integration tests, in one binary: every test starts a real server on
//! port 0 (in-process, or the real `aftercart` binary) and talks HTTP to it.
//!
//! - `crash`: kill -9 during conversions, torn tails, graceful stops: nothing acknowledged is lost.
//! - `decisions`: offers on every channel from the sample set, codecs, replays, explain and preview.
//! - `delivery`: one profile across channels, caps, budgets and pacing over simulated days, suppression, holdouts, learned CTR.
//! - `targeting`: every targeting predicate matching and not matching.
//! - `simulate`: the simulator as the report's oracle: delivery, identity resolution and a known true lift recovered.
//! - `slots`: multi-slot walks, advertiser and competitive separation, ranking, floors and blocklists.
//! - `bad_input`: malformed, wrong-typed, oversized and hostile requests get precise 4xx errors.
//! - `exposure`: the exposure log, impressions, clicks, conversions, crash safety and readers.
//! - `management`: keys and roles on every management endpoint, the campaigns API, approval, restarts, the audit trail.
//! - `inventory`: stock per location, product offers, in-unit purchases that never oversell.
//! - `privacy`: subject access, erasure everywhere (graph, caps, readers, restarts), no raw e-mail on disk.
//! - `report`: `GET /v1/campaigns/{id}/report`: in-store revenue from a web offer, who may read it, periods and windows.
//! - `traffic`: rate limits per address and profile, trusted proxies, bots and too-fast impressions are never charged.
//! - `kevel`: Kevel's request and response shapes, stable ids and their lookup, UserDB read, forget and consent.
//! - `checkout`: CORS on public endpoints only, the SDK's caching and SRI (and the README's copy of it), the demo page, the sample stock seed.
//! - `lifecycle`: configuration errors, start-up refusal, validate, health and metrics, graceful shutdown.

mod bad_input;
mod checkout;
mod crash;
mod decisions;
mod delivery;
mod exposure;
mod inventory;
mod kevel;
mod lifecycle;
mod management;
mod privacy;
mod report;
mod simulate;
mod slots;
mod support;
mod targeting;
mod traffic;
