//! aftercart fleets, in one binary (`cargo test --features nats,redis --test cluster`,
//! run by `tests/cluster/run`): real engines on loopback, started per test and stopped
//! after, and real `aftercart` nodes of the built binary.
//!
//! - `nats_fleet`: the harness for NATS: `nats-server -js` on a free port, nodes.
//! - `nats`: the exposure log and campaign changes on NATS JetStream: propagation within
//!   a second, kill -9 of a node, a NATS outage, tokens across nodes.
//! - `redis_fleet`: the harness for Redis: `redis-server` on a free port, nodes.
//! - `redis`: budgets, caps, identity links, suppression, erasures and stock shared on
//!   Redis: a cap on one node holds on the others, a shared budget within 1%, stock
//!   never oversold, Redis down.

mod nats;
mod nats_fleet;
mod redis;
mod redis_fleet;
