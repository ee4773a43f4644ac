//! Latency histograms (HdrHistogram, microseconds, 3 significant digits) and the
//! summary every driver reports.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest latency kept exactly; anything slower is recorded as this.
const HIGHEST_US: u64 = 60_000_000;

pub struct Latency(Histogram<u64>);

/// A latency distribution in microseconds, as written to the results files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn new() -> Latency {
        // Bounds and precision are constants that are valid, so this cannot fail.
        Latency(Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, HIGHEST_US);
        self.0.saturating_record(us);
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many recorded latencies were at least `d`.
    pub fn count_at_least(&self, d: Duration) -> u64 {
        let us = d.as_micros() as u64;
        self.0
            .iter_recorded()
            .filter(|v| v.value_iterated_to() >= us)
            .map(|v| v.count_at_value())
            .sum()
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.0.len(),
            p50_us: self.0.value_at_quantile(0.50),
            p99_us: self.0.value_at_quantile(0.99),
            p999_us: self.0.value_at_quantile(0.999),
            max_us: self.0.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert_eq!(l.count_at_least(Duration::from_micros(991)), 10);
    }

    #[test]
    fn histograms_add_up_and_extremes_are_clamped() {
        let mut a = Latency::new();
        a.record(Duration::ZERO);
        let mut b = Latency::new();
        b.record(Duration::from_secs(3600));
        a.add(&b);
        let s = a.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.p50_us, 1);
        assert!(s.max_us >= HIGHEST_US && s.max_us < HIGHEST_US + HIGHEST_US / 500);
    }
}
