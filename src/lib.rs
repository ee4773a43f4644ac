//! aftercart: an ad server for the moment right after a purchase.
//!
//! A checkout page, app or in-store POS posts the confirmation context and gets back
//! the best offers for that moment, chosen from in-memory campaign indexes.
//!
//! The modules, in the order a decision flows through them:
//!
//! - [`config`]: settings from defaults, a TOML file, `AFTERCART_*` and flags.
//! - [`campaign`]: the campaign document, its validation, the campaigns folder.
//! - [`catalog`]: uploads and deletes: validated, authorised, persisted, logged, published.
//! - [`access`]: API keys, roles and advertisers.
//! - [`inventory`]: live stock per SKU and location (feeds, the start-up seed), for
//!   product offers and purchases.
//! - [`index`]: compiled campaigns and their compact records, inverted targeting
//!   indexes, the published snapshot and its incremental publisher.
//! - [`decision`]: request validation, selection (eligibility, ranking, slots), replays,
//!   and the live gate of the slot walk.
//! - [`delivery`]: caps, budgets and pacing, holdouts, suppression, learned CTR, stats.
//! - [`traffic`]: client addresses behind trusted proxies, rate limits, bots.
//! - [`token`]: sealed tracking tokens for impression, click and purchase URLs.
//! - [`tracking`]: impression and click events, counted once and charged.
//! - [`purchase`]: in-unit purchases of product offers, never oversold.
//! - [`conversion`]: purchases and refunds from checkouts and POS, validated whole.
//! - [`exposure`]: the append-only exposure log: records, writer, reader.
//! - [`ledger`]: spend and deduplication state derived from the log, checkpointed.
//! - [`measure`]: `aftercart report`: closed-loop attribution, ROAS across channels and
//!   holdout lift, from the exposure log alone.
//! - [`identity`]: keyed hashing of customer identifiers; the identity graph that links
//!   them into profiles.
//! - [`erasure`]: forgetting a person: the erasure index, redaction for every reader.
//! - [`consent`]: consent recorded per person, applied to their later decisions.
//! - [`compat`]: drop-in compatibility with other ad servers' clients (Kevel's
//!   Decision API and UserDB).
//! - [`cluster`]: shared state across a fleet of decision nodes (the exposure log and
//!   campaign changes on NATS JetStream, behind the `nats` feature).
//! - [`http`]: the server, routing, codecs (JSON, MessagePack), errors, CORS for the
//!   public endpoints, and the checkout SDK and demo page it serves.
//! - [`app`]: the shared state a running server hands to every request.
//! - [`cluster`]: shared state across a fleet of decision nodes (budgets, caps,
//!   identity links, stock), plugged in by configuration (Redis, cargo feature `redis`).
//! - [`metrics`], [`shutdown`], [`clock`], [`ids`], [`money`], [`secrets`],
//!   [`journal`], [`validation`]: the small pieces everything else stands on.
//! - [`simulate`]: a population of shoppers through a running server, with a known true effect.
//! - [`synth`]: synthetic campaigns and requests for benches and load tests.
//! - [`cli`]: the `aftercart` command line.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod campaign;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod compat;
pub mod config;
pub mod consent;
pub mod conversion;
pub mod decision;
pub mod delivery;
pub mod erasure;
pub mod exposure;
pub mod http;
pub mod identity;
pub mod ids;
pub mod index;
pub mod inventory;
pub mod journal;
pub mod ledger;
pub mod measure;
pub mod metrics;
pub mod money;
pub mod purchase;
pub mod secrets;
pub mod shutdown;
pub mod simulate;
pub mod synth;
pub mod token;
pub mod tracking;
pub mod traffic;
pub mod validation;
