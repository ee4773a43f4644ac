//! Campaign churn: one campaign replaced through `PUT /v1/campaigns/{id}` at a fixed
//! interval (every 10 ms by default) while `load-tests/run` drives decisions beside it.
//!
//! Each upload changes the document (its name carries a revision number and its bid
//! alternates by a cent), so every one is a real replacement: validated, written and
//! fsynced, logged, and published to the decision path before the answer. The upload
//! latency is measured from the actual send; when an upload takes longer than the
//! interval the next one goes out at once, and fewer are made than `scheduled`.
//!
//! ```sh
//! cargo run --release --example churn -- --addr 127.0.0.1:8080 --key-file data/admin.key \
//!     --campaign target/load/campaigns/synth-42.json --duration 15
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::pace::{Schedule, Wall, drive};

#[derive(Parser)]
struct Args {
    /// The server's address (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// A file holding an admin key (the server's generated `DATA/admin.key`).
    #[arg(long)]
    key_file: PathBuf,
    /// The campaign document to replace, again and again (its id names the campaign).
    #[arg(long)]
    campaign: PathBuf,
    /// Milliseconds between uploads.
    #[arg(long, default_value_t = 10.0)]
    every_ms: f64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Labels copied into the result.
    #[arg(long, default_value = "churn")]
    phase: String,
    #[arg(long, default_value = "server")]
    target: String,
    /// Write the result here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The `k`th revision of a campaign document: a different name and, every other
/// revision, a bid one cent higher, so the server sees a real change each time.
fn revision(doc: &Value, k: u64) -> Value {
    let mut doc = doc.clone();
    let name = doc["name"].as_str().unwrap_or("campaign").to_string();
    doc["name"] = json!(format!("{name} (revision {k})"));
    if k % 2 == 1
        && let Some(amount) = doc["bid"]["amount"].as_f64()
    {
        doc["bid"]["amount"] = json!(((amount + 0.01) * 100.0).round() / 100.0);
    }
    doc
}

fn main() -> ExitCode {
    let args = Args::parse();
    if [args.every_ms, args.duration]
        .iter()
        .any(|x| x.is_nan() || *x <= 0.0)
    {
        eprintln!("churn: --every-ms and --duration must be positive");
        return ExitCode::from(64);
    }
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let (key, doc) = match (read(&args.key_file), read(&args.campaign)) {
        (Ok(k), Ok(d)) => (k.trim().to_string(), d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("churn: cannot read {e}");
            return ExitCode::from(66);
        }
    };
    let doc: Value = match serde_json::from_str(&doc) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("churn: {}: {e}", args.campaign.display());
            return ExitCode::from(65);
        }
    };
    let Some(id) = doc["id"].as_str().map(str::to_string) else {
        eprintln!("churn: {}: the document has no id", args.campaign.display());
        return ExitCode::from(65);
    };
    let mut conn = match support::http::Conn::open(args.addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("churn: cannot connect to {}: {e}", args.addr);
            return ExitCode::from(69);
        }
    };
    let auth = format!("Bearer {key}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let target = format!("/v1/campaigns/{id}");
    let schedule = Schedule {
        connection: 0,
        connections: 1,
        rate: 1000.0 / args.every_ms,
    };
    let mut first_error = None;
    let start = Instant::now();
    let recorded = drive(
        &schedule,
        Duration::ZERO,
        Duration::from_secs_f64(args.duration),
        &Wall(start),
        |k| {
            let body = serde_json::to_vec(&revision(&doc, k)).unwrap_or_default();
            let request = support::http::request("PUT", args.addr, &target, &headers, &body);
            match conn.exchange(&request) {
                Ok(r) if r.status == 200 || r.status == 201 => true,
                Ok(r) => {
                    first_error.get_or_insert_with(|| {
                        format!("{}: {}", r.status, String::from_utf8_lossy(&r.body))
                    });
                    false
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                    let _ = conn.reopen();
                    false
                }
            }
        },
    );
    let result = json!({
        "tool": "churn",
        "phase": args.phase,
        "target": args.target,
        "every_ms": args.every_ms,
        "duration_s": args.duration,
        "uploads": recorded.sent,
        "errors": recorded.errors,
        // Fewer uploads than scheduled means each took longer than the interval.
        "scheduled": (args.duration * 1000.0 / args.every_ms).ceil() as u64,
        "latency_us": recorded.uncorrected.summary(),
    });
    if let Err(e) = support::write_result(args.out.as_deref(), &result) {
        eprintln!("churn: cannot write the result: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(e) = first_error {
        eprintln!(
            "churn: {} of {} uploads failed; the first: {e}",
            recorded.errors, recorded.sent
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_revision_differs_from_the_last() {
        let doc = json!({"id": "c1", "name": "Trial", "bid": {"model": "cpm", "amount": 12.5}});
        let revs: Vec<Value> = (0..4).map(|k| revision(&doc, k)).collect();
        assert_eq!(revs[0]["name"], "Trial (revision 0)");
        assert_eq!(revs[0]["bid"]["amount"], 12.5);
        assert_eq!(revs[1]["bid"]["amount"], 12.51);
        assert_eq!(revs[2]["bid"]["amount"], 12.5);
        assert!(revs.windows(2).all(|w| w[0] != w[1]));
        assert_eq!(revs[3]["id"], "c1");
    }
}
