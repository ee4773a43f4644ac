//! Fixed-rate decision load with coordinated omission corrected: the open-loop
//! generator `load-tests/run` uses for tail latency (Debian has no wrk2).
//!
//! Requests are scheduled at fixed intervals at the target rate, dealt round robin over
//! `--connections` keep-alive connections (one thread each), and each latency is
//! measured from the request's *scheduled* send time, so a stall counts for every
//! request that should have gone out during it (see `support/pace.rs`). Bodies are the
//! synthetic requests of `--bodies`, each with a fresh transaction id.
//!
//! ```sh
//! cargo run --release --example fixed_rate -- --addr 127.0.0.1:8080 --rate 10000 \
//!     --duration 20 --bodies target/load/requests.ndjson
//! ```
//!
//! Prints (or writes to `--out`) one JSON object: the rate, what was sent, errors, and
//! the corrected and uncorrected p50/p99/p99.9/max in microseconds.

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::latency::Latency;
use support::pace::{Schedule, Wall, drive};

#[derive(Parser)]
struct Args {
    /// The server's address (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// Requests per second, over all connections.
    #[arg(long)]
    rate: f64,
    /// Keep-alive connections (one thread each).
    #[arg(long, default_value_t = 32)]
    connections: u64,
    /// Seconds recorded.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds sent at the rate before recording starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Request bodies, one JSON per line (`aftercart synth requests`).
    #[arg(long)]
    bodies: PathBuf,
    /// The path posted to.
    #[arg(long, default_value = "/v1/decisions")]
    path: String,
    /// Labels copied into the result.
    #[arg(long, default_value = "fixed_rate")]
    phase: String,
    #[arg(long, default_value = "server")]
    target: String,
    /// Write the result here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.connections == 0
        || [args.rate, args.duration]
            .iter()
            .any(|x| x.is_nan() || *x <= 0.0)
        || args.warmup.is_nan()
        || args.warmup < 0.0
    {
        eprintln!("fixed_rate: --rate, --connections and --duration must be positive");
        return ExitCode::from(64);
    }
    let bodies = match support::bodies::load(&args.bodies) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fixed_rate: {e}");
            return ExitCode::from(66);
        }
    };
    let tag = support::bodies::run_tag();
    let warmup = Duration::from_secs_f64(args.warmup);
    let end = warmup + Duration::from_secs_f64(args.duration);
    // Connect everything before the clock starts, so connecting is not measured.
    let mut conns = Vec::new();
    for _ in 0..args.connections {
        match support::http::Conn::open(args.addr) {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("fixed_rate: cannot connect to {}: {e}", args.addr);
                return ExitCode::from(69);
            }
        }
    }
    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(c, mut conn)| {
                let (bodies, tag, args) = (&bodies, &tag, &args);
                s.spawn(move || {
                    let schedule = Schedule {
                        connection: c as u64,
                        connections: args.connections,
                        rate: args.rate,
                    };
                    let headers = [("Content-Type", "application/json")];
                    drive(&schedule, warmup, end, &Wall(start), |k| {
                        let slot = k * args.connections + c as u64;
                        let body = bodies[(slot % bodies.len() as u64) as usize]
                            .with_suffix(&format!("{tag}-f{slot}"));
                        let request =
                            support::http::request("POST", args.addr, &args.path, &headers, &body);
                        match conn.exchange(&request) {
                            Ok(r) => r.status == 200,
                            Err(_) => {
                                // Count it and carry on over a fresh connection.
                                let _ = conn.reopen();
                                false
                            }
                        }
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64() - args.warmup;
    let (mut corrected, mut uncorrected) = (Latency::new(), Latency::new());
    let (mut sent, mut errors) = (0, 0);
    for r in results {
        let Ok(r) = r else {
            eprintln!("fixed_rate: a connection thread panicked");
            return ExitCode::FAILURE;
        };
        corrected.add(&r.corrected);
        uncorrected.add(&r.uncorrected);
        sent += r.sent;
        errors += r.errors;
    }
    let result = json!({
        "tool": "fixed_rate",
        "phase": args.phase,
        "target": args.target,
        "rate": args.rate,
        "connections": args.connections,
        "duration_s": args.duration,
        "sent": sent,
        // The rate actually achieved: below the target when the server (or this box)
        // could not keep up, which the corrected latencies then show.
        "achieved_rps": sent as f64 / elapsed.max(1e-9),
        "errors": errors,
        "latency_us": corrected.summary(),
        "uncorrected_us": uncorrected.summary(),
    });
    if let Err(e) = support::write_result(args.out.as_deref(), &result) {
        eprintln!("fixed_rate: cannot write the result: {e}");
        return ExitCode::FAILURE;
    }
    if errors > 0 {
        eprintln!("fixed_rate: {errors} of {sent} requests failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
