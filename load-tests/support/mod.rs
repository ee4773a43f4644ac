//! What the load drivers share: a blocking HTTP/1.1 connection, open-loop pacing with
//! coordinated omission corrected, latency histograms, and the request bodies.
//!
//! Each driver is its own example and uses only part of this module.
#![allow(dead_code)]

pub mod bodies;
pub mod http;
pub mod latency;
pub mod pace;

use std::path::Path;

/// Writes one result (a JSON object) to `out`, or to stdout when there is none.
pub fn write_result(out: Option<&Path>, result: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string(result)?;
    text.push('\n');
    match out {
        Some(path) => std::fs::write(path, text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
