//! The full flow per simulated shopper, closed loop: a decision, then the impression
//! and the click of its first offer (from the URLs in the decision's response), then
//! the shopper's purchase posted as a conversion, as the order system would.
//!
//! `--shoppers` threads each run shoppers one after another on their own keep-alive
//! connection for `--duration` seconds. A decision with no offer ends its flow there
//! (counted as `nofill`). The result gives completed flows per second and the latency
//! of each step. The server should run with `min_render_ms = 0`: these shoppers do not
//! wait for a page to render, and impressions sooner than that would be logged as
//! invalid traffic instead of counted.
//!
//! ```sh
//! cargo run --release --example flow -- --addr 127.0.0.1:8080 --key-file data/admin.key \
//!     --bodies target/load/requests.ndjson --duration 20
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::bodies::Body;
use support::http::{Conn, path_of, request};
use support::latency::Latency;

#[derive(Parser)]
struct Args {
    /// The server's address (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// A file holding an admin key (conversions need an ingest or admin key).
    #[arg(long)]
    key_file: PathBuf,
    /// Request bodies, one JSON per line (`aftercart synth requests`).
    #[arg(long)]
    bodies: PathBuf,
    /// Shoppers at once (one thread and connection each).
    #[arg(long, default_value_t = 16)]
    shoppers: usize,
    /// Seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Labels copied into the result.
    #[arg(long, default_value = "flow")]
    phase: String,
    #[arg(long, default_value = "server")]
    target: String,
    /// Write the result here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The steps of a flow, in order.
const STEPS: [&str; 4] = ["decision", "impression", "click", "conversion"];

/// What one shopper thread measured.
struct Tally {
    steps: [Latency; 4],
    flows: u64,
    nofill: u64,
    errors: u64,
    first_error: Option<String>,
}

/// The purchase a shopper makes after the flow: the basket of its decision request, as
/// the order system posts it, under an order id of its own (a conversion is never
/// credited to the decision made for its own order).
fn conversion(decision_request: &Value, order_id: &str) -> Value {
    let mut c = json!({
        "order_id": order_id,
        "type": "purchase",
        "channel": decision_request["channel"],
        "total": decision_request["transaction"]["total"],
        "currency": decision_request["transaction"]["currency"],
        "customer": {"ids": decision_request["customer"]["ids"]},
        "items": decision_request["transaction"]["items"],
    });
    if let Some(store) = decision_request["context"]["store_id"].as_str() {
        c["store_id"] = json!(store);
    }
    c
}

/// The first offer's impression and click URLs, if the decision filled.
fn first_offer_urls(decision: &Value) -> Option<(&str, &str)> {
    let tracking = &decision["offers"].get(0)?["tracking"];
    Some((
        tracking["impression"].as_str()?,
        tracking["click"].as_str()?,
    ))
}

struct Shopper<'a> {
    args: &'a Args,
    conn: Conn,
    auth: &'a str,
    tally: Tally,
}

impl Shopper<'_> {
    /// One step: sends, times, and checks the status; `None` ends the flow.
    fn step(
        &mut self,
        i: usize,
        method: &str,
        target: &str,
        body: &[u8],
        want: u16,
    ) -> Option<Vec<u8>> {
        let mut headers = vec![("Content-Type", "application/json")];
        if STEPS[i] == "conversion" {
            headers.push(("Authorization", self.auth));
        }
        let req = request(method, self.args.addr, target, &headers, body);
        let sent = Instant::now();
        let answer = self.conn.exchange(&req);
        self.tally.steps[i].record(sent.elapsed());
        let problem = match answer {
            Ok(r) if r.status == want => return Some(r.body),
            Ok(r) => format!(
                "{} answered {} ({})",
                STEPS[i],
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => {
                let _ = self.conn.reopen();
                format!("{}: {e}", STEPS[i])
            }
        };
        self.tally.errors += 1;
        self.tally.first_error.get_or_insert(problem);
        None
    }

    fn flow(&mut self, body: &Body, parsed: &Value, id: &str) {
        let Some(answer) = self.step(0, "POST", "/v1/decisions", &body.with_suffix(id), 200) else {
            return;
        };
        let Ok(decision) = serde_json::from_slice::<Value>(&answer) else {
            self.tally.errors += 1;
            return;
        };
        let Some((impression, click)) = first_offer_urls(&decision) else {
            self.tally.nofill += 1;
            return;
        };
        let (impression, click) = (path_of(impression).to_string(), path_of(click).to_string());
        if self.step(1, "GET", &impression, b"", 204).is_none()
            || self.step(2, "GET", &click, b"", 302).is_none()
        {
            return;
        }
        let order =
            serde_json::to_vec(&conversion(parsed, &format!("LT-{id}"))).unwrap_or_default();
        if self
            .step(3, "POST", "/v1/conversions", &order, 202)
            .is_some()
        {
            self.tally.flows += 1;
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.shoppers == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        eprintln!("flow: --shoppers and --duration must be positive");
        return ExitCode::from(64);
    }
    let loaded = support::bodies::load(&args.bodies).and_then(|bodies| {
        let text = std::fs::read_to_string(&args.bodies)?;
        let parsed: Result<Vec<Value>, _> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect();
        Ok((bodies, parsed?))
    });
    let (bodies, parsed) = match loaded {
        Ok(b) => b,
        Err(e) => {
            eprintln!("flow: {}: {e}", args.bodies.display());
            return ExitCode::from(66);
        }
    };
    let key = match std::fs::read_to_string(&args.key_file) {
        Ok(k) => k.trim().to_string(),
        Err(e) => {
            eprintln!("flow: cannot read {}: {e}", args.key_file.display());
            return ExitCode::from(66);
        }
    };
    let auth = format!("Bearer {key}");
    let tag = support::bodies::run_tag();
    let mut conns = Vec::new();
    for _ in 0..args.shoppers {
        match Conn::open(args.addr) {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("flow: cannot connect to {}: {e}", args.addr);
                return ExitCode::from(69);
            }
        }
    }
    let deadline = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let tallies: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(c, conn)| {
                let (args, auth, bodies, parsed, tag) = (&args, &auth, &bodies, &parsed, &tag);
                s.spawn(move || {
                    let mut shopper = Shopper {
                        args,
                        conn,
                        auth,
                        tally: Tally {
                            steps: std::array::from_fn(|_| Latency::new()),
                            flows: 0,
                            nofill: 0,
                            errors: 0,
                            first_error: None,
                        },
                    };
                    let mut k = 0;
                    while start.elapsed() < deadline {
                        let i = (k * args.shoppers + c) % bodies.len();
                        shopper.flow(&bodies[i], &parsed[i], &format!("{tag}-s{c}-{k}"));
                        k += 1;
                    }
                    shopper.tally
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut steps: [Latency; 4] = std::array::from_fn(|_| Latency::new());
    let (mut flows, mut nofill, mut errors, mut first_error) = (0, 0, 0, None);
    for t in tallies {
        let Ok(t) = t else {
            eprintln!("flow: a shopper thread panicked");
            return ExitCode::FAILURE;
        };
        for (all, one) in steps.iter_mut().zip(&t.steps) {
            all.add(one);
        }
        flows += t.flows;
        nofill += t.nofill;
        errors += t.errors;
        first_error = first_error.or(t.first_error);
    }
    let step_summaries: serde_json::Map<String, Value> = STEPS
        .iter()
        .zip(&steps)
        .map(|(name, l)| (name.to_string(), json!(l.summary())))
        .collect();
    let result = json!({
        "tool": "flow",
        "phase": args.phase,
        "target": args.target,
        "shoppers": args.shoppers,
        "duration_s": elapsed,
        "flows": flows,
        "flows_per_s": flows as f64 / elapsed,
        "nofill": nofill,
        "errors": errors,
        "steps_us": step_summaries,
    });
    if let Err(e) = support::write_result(args.out.as_deref(), &result) {
        eprintln!("flow: cannot write the result: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(e) = first_error {
        eprintln!("flow: {errors} steps failed; the first: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversion_is_the_decision_basket_under_its_own_order_id() {
        let request = json!({
            "channel": "in_store", "placement": "pos_receipt",
            "transaction": {"id": "T-1-2", "total": 9.98, "currency": "USD",
                "items": [{"sku": "SKU-1", "category": "grocery/aisle-1", "brand": "B", "price": 4.99, "quantity": 2}]},
            "customer": {"ids": {"loyalty_id": "L-7", "device_id": "dev-7"}, "new_customer": false},
            "context": {"country": "US", "store_id": "store-007"},
        });
        let c = conversion(&request, "LT-x");
        assert_eq!(c["order_id"], "LT-x");
        assert_eq!(c["channel"], "in_store");
        assert_eq!(c["store_id"], "store-007");
        assert_eq!(
            c["customer"],
            json!({"ids": {"loyalty_id": "L-7", "device_id": "dev-7"}})
        );
        assert_eq!(c["items"], request["transaction"]["items"]);
        let online = conversion(
            &json!({"channel": "online", "transaction": {}, "customer": {}, "context": {}}),
            "o",
        );
        assert!(online.get("store_id").is_none());
    }

    #[test]
    fn tracking_urls_come_from_the_first_offer() {
        let d = json!({"offers": [{"tracking": {"impression": "http://h/i?t=1", "click": "http://h/c?t=1"}}, {}]});
        assert_eq!(
            first_offer_urls(&d),
            Some(("http://h/i?t=1", "http://h/c?t=1"))
        );
        assert_eq!(first_offer_urls(&json!({"offers": []})), None);
    }
}
