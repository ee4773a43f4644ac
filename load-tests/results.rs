//! The results table of `load-tests/run`: reads the JSON results its phases wrote (one
//! object per file: wrk rounds, the drivers, resident-set readings, the run's
//! description), takes medians over rounds, computes the ratios against the baselines,
//! checks them against the targets, and prints a Markdown table.
//!
//! ```sh
//! cargo run --release --example results -- table --dir target/load/run --out target/load/results.md
//! cargo run --release --example results -- max-rate --dir target/load/run   # median requests/s
//! cargo run --release --example results -- fleet --dir target/load/fleet     # load-tests/fleet
//! ```

use clap::{Parser, Subcommand};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the results table (and write it to --out).
    Table {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the table of `load-tests/fleet`: a node on its own against a node with the
    /// engines at the same fixed rate (and write it to --out).
    Fleet {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the median requests/s of one target's throughput rounds, as an integer.
    MaxRate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "throughput")]
        phase: String,
        #[arg(long, default_value = "aftercart")]
        target: String,
    },
}

/// The targets, from the performance table of the design notes.
const THROUGHPUT_TARGET: f64 = 0.70;
const LOGGING_TARGET: f64 = 0.90;
const P99_TARGET_US: f64 = 1000.0;
const P99_RATIO_TARGET: f64 = 2.0;
const UPLOAD_LIVE_TARGET_US: f64 = 50_000.0;
/// The engines must not put the network on the decision path.
const FLEET_P99_RATIO_TARGET: f64 = 1.2;

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `a / b`, when both are known and `b` is not zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// An integer with thousands separators: `27718.4` → `27,718`.
fn count(x: f64) -> String {
    let digits = format!("{}", x.round().abs() as u64);
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if x.round() < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Microseconds as milliseconds with a precision that suits the size.
fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn percent(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

fn times(r: f64) -> String {
    format!("{r:.2}×")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "—".into())
}

/// The results of one run, as read from its files.
struct Results(Vec<Value>);

impl Results {
    fn of<'a>(
        &'a self,
        tool: &'a str,
        phase: &'a str,
        target: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.0
            .iter()
            .filter(move |r| r["tool"] == tool && r["phase"] == phase && r["target"] == target)
    }

    /// The median of a numeric field (a JSON pointer such as `/latency_us/p99`).
    fn median(&self, tool: &str, phase: &str, target: &str, field: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .of(tool, phase, target)
            .filter_map(|r| r.pointer(field).and_then(Value::as_f64))
            .collect();
        median(&values)
    }

    fn meta(&self, field: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|r| r["tool"] == "meta")
            .map(|r| &r[field])
    }

    /// Latency quantiles (p50, p99, p99.9 and optionally max) in ms, joined by ` / `.
    fn quantiles(
        &self,
        tool: &str,
        phase: &str,
        target: &str,
        prefix: &str,
        with_max: bool,
    ) -> Option<String> {
        let mut names = vec!["p50_us", "p99_us", "p999_us"];
        if with_max {
            names.push("max_us");
        }
        let parts: Option<Vec<String>> = names
            .iter()
            .map(|n| {
                self.median(tool, phase, target, &format!("{prefix}/{n}"))
                    .map(ms)
            })
            .collect();
        parts.map(|p| format!("{} ms", p.join(" / ")))
    }
}

fn render(results: &Results) -> String {
    let r = results;
    let mut out = String::new();
    // Sizes (also those the script writes as strings) get thousands separators; a
    // commit hash of digits only stays as it is.
    let meta = |f: &str| match r.meta(f) {
        Some(Value::String(s)) if f == "commit" || f == "date" => s.clone(),
        Some(Value::String(s)) => s.parse::<f64>().map_or_else(|_| s.clone(), count),
        Some(v) => v.as_f64().map_or_else(|| v.to_string(), count),
        None => "?".into(),
    };
    let quick = r.meta("mode").and_then(Value::as_str) == Some("quick");
    let _ = writeln!(out, "# aftercart load test\n");
    if quick {
        let _ = writeln!(
            out,
            "**Quick run** (`--quick`: short rounds, a smoke test of the harness; the figures are indicative only).\n"
        );
    }
    let _ = writeln!(
        out,
        "{} · commit {} · {} cores · {} campaigns · {} request bodies · wrk {} threads, {} connections · {} rounds of {} s per server\n",
        meta("date"),
        meta("commit"),
        meta("cores"),
        meta("campaigns"),
        meta("bodies"),
        meta("threads"),
        meta("connections"),
        meta("rounds"),
        meta("round_s"),
    );
    let _ = writeln!(out, "| measure | aftercart | baseline | ratio | target |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    let mut row = |m: &str, a: String, b: String, ratio: String, target: String| {
        let _ = writeln!(out, "| {m} | {a} | {b} | {ratio} | {target} |");
    };

    // Throughput: aftercart (logging on) against hello, medians of alternating rounds.
    let rps = |t: &str| r.median("wrk", "throughput", t, "/rps");
    let (a, h, off) = (rps("aftercart"), rps("hello"), rps("aftercart-log-off"));
    let tr = ratio(a, h);
    row(
        "throughput, requests/s (wrk, closed loop)",
        or_dash(a.map(count)),
        or_dash(h.map(|h| format!("hello {}", count(h)))),
        or_dash(tr.map(percent)),
        format!(
            "≥ 70% of hello {}",
            tr.map_or("", |t| verdict(t >= THROUGHPUT_TARGET))
        ),
    );
    let p99 = |t: &str| r.median("wrk", "throughput", t, "/latency_us/p99_us");
    row(
        "throughput latency p50 / p99 / p99.9 (closed loop, not corrected)",
        or_dash(r.quantiles("wrk", "throughput", "aftercart", "/latency_us", false)),
        or_dash(r.quantiles("wrk", "throughput", "hello", "/latency_us", false)),
        or_dash(ratio(p99("aftercart"), p99("hello")).map(|x| format!("p99 {}", times(x)))),
        String::new(),
    );
    let lr = ratio(a, off);
    row(
        "logging on vs off (`log_decisions = false`), requests/s",
        or_dash(a.map(count)),
        or_dash(off.map(|o| format!("off {}", count(o)))),
        or_dash(lr.map(percent)),
        format!(
            "on ≥ 90% of off {}",
            lr.map_or("", |l| verdict(l >= LOGGING_TARGET))
        ),
    );

    // Fixed rate, coordinated omission corrected, at half of aftercart's throughput.
    let rate = r.median("fixed_rate", "fixed_rate", "aftercart", "/rate");
    let fp99 = |t: &str| r.median("fixed_rate", "fixed_rate", t, "/latency_us/p99_us");
    let (fa, fh) = (fp99("aftercart"), fp99("hello"));
    let fr = ratio(fa, fh);
    row(
        &format!(
            "fixed rate {}/s ({} of aftercart's throughput), {} connections: p50 / p99 / p99.9 / max, from the scheduled send",
            or_dash(rate.map(count)),
            or_dash(ratio(rate, a).map(|x| format!("{:.0}%", x * 100.0))),
            r.median("fixed_rate", "fixed_rate", "aftercart", "/connections")
                .map_or("?".into(), count),
        ),
        or_dash(r.quantiles("fixed_rate", "fixed_rate", "aftercart", "/latency_us", true)),
        or_dash(
            r.quantiles("fixed_rate", "fixed_rate", "hello", "/latency_us", true)
                .map(|q| format!("hello {q}")),
        ),
        or_dash(fr.map(|x| format!("p99 {}", times(x)))),
        format!(
            "p99 ≤ 1 ms {}, ≤ 2× hello {}",
            fa.map_or("", |p| verdict(p <= P99_TARGET_US)),
            fr.map_or("", |x| verdict(x <= P99_RATIO_TARGET)),
        ),
    );

    // Below the scheduled rate means the server fell behind: a backlog, which the
    // corrected latencies above include and the uncorrected ones hide.
    let achieved = |phase: &str, t: &str| r.median("fixed_rate", phase, t, "/achieved_rps");
    let uncorrected =
        |phase: &str, t: &str| r.median("fixed_rate", phase, t, "/uncorrected_us/p99_us");
    row(
        "fixed rate: requests/s achieved; p99 from the actual send (what wrk would report)",
        or_dash(achieved("fixed_rate", "aftercart").map(count))
            + &uncorrected("fixed_rate", "aftercart")
                .map_or(String::new(), |p| format!("; p99 {} ms", ms(p))),
        or_dash(achieved("fixed_rate", "hello").map(|h| format!("hello {}", count(h))))
            + &uncorrected("fixed_rate", "hello")
                .map_or(String::new(), |p| format!("; p99 {} ms", ms(p))),
        String::new(),
        String::new(),
    );

    // Churn: a campaign replaced every 10 ms beside the same loads.
    let cp99 = r.median(
        "fixed_rate",
        "churn_fixed_rate",
        "aftercart",
        "/latency_us/p99_us",
    );
    row(
        "churn (a campaign replaced every 10 ms): fixed-rate p50 / p99 / p99.9 / max",
        or_dash(r.quantiles(
            "fixed_rate",
            "churn_fixed_rate",
            "aftercart",
            "/latency_us",
            true,
        )),
        or_dash(fa.map(|p| format!("p99 without churn {} ms", ms(p)))),
        or_dash(ratio(cp99, fa).map(|x| format!("p99 {}", times(x)))),
        "decisions never stall".into(),
    );
    row(
        "churn: fixed rate requests/s achieved; p99 from the actual send",
        or_dash(achieved("churn_fixed_rate", "aftercart").map(count))
            + &uncorrected("churn_fixed_rate", "aftercart")
                .map_or(String::new(), |p| format!("; p99 {} ms", ms(p))),
        or_dash(achieved("fixed_rate", "aftercart").map(|a| format!("without churn {}", count(a)))),
        String::new(),
        String::new(),
    );
    let crps = r.median("wrk", "churn_throughput", "aftercart", "/rps");
    row(
        "churn: throughput, requests/s",
        or_dash(crps.map(count)),
        or_dash(a.map(|a| format!("without churn {}", count(a)))),
        or_dash(ratio(crps, a).map(percent)),
        String::new(),
    );
    for (during, label) in [
        ("churn_fixed_rate", "at the fixed rate"),
        ("churn_throughput", "at full load"),
    ] {
        let up99 = r.median("churn", during, "aftercart", "/latency_us/p99_us");
        let uploads = r.median("churn", during, "aftercart", "/uploads");
        let scheduled = r.median("churn", during, "aftercart", "/scheduled");
        row(
            &format!(
                "churn: upload latency ({label}) p50 / p99 / max, {} of {} scheduled uploads",
                or_dash(uploads.map(count)),
                or_dash(scheduled.map(count)),
            ),
            or_dash(
                ["p50_us", "p99_us", "max_us"]
                    .iter()
                    .map(|q| {
                        r.median("churn", during, "aftercart", &format!("/latency_us/{q}"))
                            .map(ms)
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|v| format!("{} ms", v.join(" / "))),
            ),
            String::new(),
            String::new(),
            format!(
                "live ≤ 50 ms {}",
                up99.map_or("", |p| verdict(p <= UPLOAD_LIVE_TARGET_US))
            ),
        );
    }

    // The full flow.
    let flows = r.median("flow", "flow", "aftercart", "/flows_per_s");
    row(
        &format!(
            "full flow ({} shoppers, closed loop): flows/s (decision → impression → click → conversion)",
            r.median("flow", "flow", "aftercart", "/shoppers")
                .map_or("?".into(), count)
        ),
        or_dash(flows.map(count)),
        String::new(),
        String::new(),
        String::new(),
    );
    let step_p = |q: &str| -> Option<String> {
        let v: Option<Vec<String>> = ["decision", "impression", "click", "conversion"]
            .iter()
            .map(|s| {
                r.median("flow", "flow", "aftercart", &format!("/steps_us/{s}/{q}"))
                    .map(ms)
            })
            .collect();
        v.map(|v| format!("{} ms", v.join(" / ")))
    };
    row(
        "full flow p50 per step: decision / impression / click / conversion",
        or_dash(step_p("p50_us")),
        String::new(),
        String::new(),
        String::new(),
    );
    row(
        "full flow p99 per step: decision / impression / click / conversion",
        or_dash(step_p("p99_us")),
        String::new(),
        String::new(),
        String::new(),
    );

    // Peak resident set after each phase.
    let _ = writeln!(
        out,
        "\n| peak resident set (VmHWM) of aftercart after | logging on | logging off |"
    );
    let _ = writeln!(out, "|---|---:|---:|");
    for (phase, label) in [
        ("start", "start (100k campaigns loaded)"),
        ("throughput", "throughput rounds"),
        ("fixed_rate", "fixed rate"),
        ("churn", "churn"),
        ("flow", "full flow"),
    ] {
        let mib = |t: &str| {
            r.median("rss", phase, t, "/vmhwm_kib")
                .map(|k| format!("{} MiB", count(k / 1024.0)))
        };
        if mib("aftercart").is_none() && mib("aftercart-log-off").is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            or_dash(mib("aftercart")),
            or_dash(mib("aftercart-log-off"))
        );
    }

    // Anything that failed, so a figure is never read without its caveat.
    let problems: Vec<String> =
        r.0.iter()
            .filter_map(|x| {
                let errors = x["errors"].as_u64().unwrap_or(0) + x["non_2xx"].as_u64().unwrap_or(0);
                let s = |f: &str| x[f].as_str().unwrap_or("?").to_string();
                (errors > 0).then(|| {
                    format!(
                        "- {} errors in {} / {} ({})",
                        count(errors as f64),
                        s("phase"),
                        s("target"),
                        s("tool")
                    )
                })
            })
            .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n**Errors:**\n\n{}", problems.join("\n"));
    }
    out
}

/// The table of `load-tests/fleet`: medians over its rounds.
fn render_fleet(r: &Results) -> String {
    let mut out = String::new();
    let p99 = |target| r.median("fixed_rate", "fleet", target, "/latency_us/p99_us");
    let achieved = |target| {
        r.median("fixed_rate", "fleet", target, "/achieved_rps")
            .map(count)
    };
    let rate = r.median("fixed_rate", "fleet", "alone", "/rate").map(count);
    let rounds = r.of("fixed_rate", "fleet", "alone").count();
    let _ = writeln!(
        out,
        "fixed rate {} requests/s, {rounds} round(s) per node, medians\n",
        or_dash(rate)
    );
    let _ = writeln!(
        out,
        "| node | requests/s achieved | p50 / p99 / p99.9 / max, from the scheduled send |"
    );
    let _ = writeln!(out, "|---|---:|---:|");
    for (target, label) in [("alone", "on its own"), ("engines", "with NATS and Redis")] {
        let q = r.quantiles("fixed_rate", "fleet", target, "/latency_us", true);
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            or_dash(achieved(target)),
            or_dash(q)
        );
    }
    let _ = match ratio(p99("engines"), p99("alone")) {
        Some(x) => writeln!(
            out,
            "\np99 with the engines: {} the node on its own (target ≤ {FLEET_P99_RATIO_TARGET}×) {}",
            times(x),
            verdict(x <= FLEET_P99_RATIO_TARGET)
        ),
        None => writeln!(out, "\nno complete rounds: see the drivers' output"),
    };
    out
}

fn read_dir(dir: &Path) -> Result<Results, String> {
    let mut results = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        results.push(value);
    }
    Ok(Results(results))
}

/// Renders the results in `dir`, prints the table and writes it to `out`.
fn write_table(dir: &Path, out: Option<&Path>, render: fn(&Results) -> String) -> ExitCode {
    let table = match read_dir(dir) {
        Ok(r) => render(&r),
        Err(e) => {
            eprintln!("results: {e}");
            return ExitCode::from(66);
        }
    };
    print!("{table}");
    if let Some(out) = out
        && let Err(e) = std::fs::write(out, &table)
    {
        eprintln!("results: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Table { dir, out } => write_table(&dir, out.as_deref(), render),
        Command::Fleet { dir, out } => write_table(&dir, out.as_deref(), render_fleet),
        Command::MaxRate { dir, phase, target } => {
            match read_dir(&dir).map(|r| r.median("wrk", &phase, &target, "/rps")) {
                Ok(Some(rps)) => {
                    println!("{}", rps.round() as u64);
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!(
                        "results: no {phase} rounds of {target} in {}",
                        dir.display()
                    );
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("results: {e}");
                    ExitCode::from(66)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(4.0)), None);
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(count(27_718.4), "27,718");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_000_000.0), "1,000,000");
        assert_eq!(ms(412.0), "0.41");
        assert_eq!(ms(12_345.0), "12.3");
        assert_eq!(ms(2_345_000.0), "2345");
        assert_eq!(percent(0.3921), "39.2%");
    }

    fn wrk(phase: &str, target: &str, rps: f64, p99: u64) -> Value {
        json!({"tool": "wrk", "phase": phase, "target": target, "rps": rps,
               "latency_us": {"p50_us": 100, "p99_us": p99, "p999_us": 2 * p99, "max_us": 3 * p99},
               "errors": 0, "non_2xx": 0})
    }

    fn fixed(phase: &str, target: &str, p99: u64) -> Value {
        json!({"tool": "fixed_rate", "phase": phase, "target": target, "rate": 10000.0, "connections": 32,
               "latency_us": {"p50_us": 200, "p99_us": p99, "p999_us": 2 * p99, "max_us": 4 * p99}, "errors": 0})
    }

    #[test]
    fn the_table_shows_medians_ratios_and_verdicts() {
        let results = Results(vec![
            json!({"tool": "meta", "mode": "quick", "date": "2026-12-04", "commit": "1234567", "cores": 2,
                   "campaigns": "100000", "bodies": 5000, "threads": 2, "connections": 64, "rounds": 3, "round_s": 3}),
            wrk("throughput", "hello", 50_000.0, 1000),
            wrk("throughput", "hello", 60_000.0, 1000),
            wrk("throughput", "hello", 70_000.0, 1000),
            wrk("throughput", "aftercart", 30_000.0, 3000),
            wrk("throughput", "aftercart", 45_000.0, 3000),
            wrk("throughput", "aftercart", 40_000.0, 3000),
            wrk("throughput", "aftercart-log-off", 41_000.0, 3000),
            fixed("fixed_rate", "aftercart", 900),
            // 10,000/s against the median 40,000: a quarter of the maximum.
            fixed("fixed_rate", "hello", 300),
            json!({"tool": "rss", "phase": "throughput", "target": "aftercart", "vmhwm_kib": 1_048_576}),
            json!({"tool": "churn", "phase": "churn_fixed_rate", "target": "aftercart", "uploads": 99, "scheduled": 100,
                   "errors": 2, "latency_us": {"p50_us": 9000, "p99_us": 60_000, "max_us": 70_000}}),
        ]);
        let table = render(&results);
        assert!(table.contains("**Quick run**"), "{table}");
        assert!(
            table.contains("· 100,000 campaigns · 5,000 request bodies ·"),
            "{table}"
        );
        // Medians: aftercart 40,000 against hello 60,000 is 66.7%, under the 70% bar.
        assert!(table.contains("| throughput, requests/s (wrk, closed loop) | 40,000 | hello 60,000 | 66.7% | ≥ 70% of hello ✗ |"), "{table}");
        assert!(
            table.contains("| 40,000 | off 41,000 | 97.6% | on ≥ 90% of off ✓ |"),
            "{table}"
        );
        assert!(
            table
                .contains("| fixed rate 10,000/s (25% of aftercart's throughput), 32 connections:"),
            "{table}"
        );
        assert!(table.contains("| 0.20 / 0.90 / 1.80 / 3.60 ms | hello 0.20 / 0.30 / 0.60 / 1.20 ms | p99 3.00× | p99 ≤ 1 ms ✓, ≤ 2× hello ✗ |"), "{table}");
        assert!(
            table.contains("| throughput rounds | 1,024 MiB | — |"),
            "{table}"
        );
        assert!(
            table.contains("99 of 100 scheduled uploads | 9.00 / 60.0 / 70.0 ms |"),
            "{table}"
        );
        assert!(table.contains("live ≤ 50 ms ✗"), "{table}");
        // Phases that did not run show a dash, and errors are listed.
        assert!(
            table.contains(
                "| full flow p99 per step: decision / impression / click / conversion | — |"
            ),
            "{table}"
        );
        assert!(
            table.contains("- 2 errors in churn_fixed_rate / aftercart (churn)"),
            "{table}"
        );
    }

    #[test]
    fn the_fleet_table_compares_the_p99_with_and_without_engines() {
        let round = |target: &str, p99: u64| {
            json!({"tool": "fixed_rate", "phase": "fleet", "target": target, "rate": 4000.0,
                   "achieved_rps": 3999.0,
                   "latency_us": {"p50_us": 300, "p99_us": p99, "p999_us": 2 * p99, "max_us": 3 * p99}})
        };
        let within = Results(vec![
            round("alone", 900),
            round("alone", 1000),
            round("alone", 5000),
            round("engines", 1000),
            round("engines", 1100),
            round("engines", 1100),
        ]);
        let table = render_fleet(&within);
        assert!(table.contains("3 round(s) per node"), "{table}");
        assert!(table.contains("1.10× the node on its own"), "{table}");
        assert!(table.contains("✓"), "{table}");
        let beyond = Results(vec![round("alone", 1000), round("engines", 1300)]);
        assert!(render_fleet(&beyond).contains("1.30×"));
        assert!(render_fleet(&beyond).contains("✗"));
        assert!(render_fleet(&Results(vec![])).contains("no complete rounds"));
    }
}
