//! aftercart fleets, in one binary (`cargo test --features nats --test cluster`): real
//! engines on loopback, started per test and stopped after, and real `aftercart` nodes.
//!
//! - `fleet`: the harness: `nats-server -js` on a free port, nodes of the built binary.
//! - `nats`: the exposure log and campaign changes on NATS JetStream: propagation within
//!   a second, kill -9 of a node, a NATS outage, tokens across nodes.

mod fleet;
mod nats;
