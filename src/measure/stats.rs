//! Intervals for the holdout comparison, all at 95% and all closed-form (no resampling,
//! so a report is deterministic and costs nothing extra).
//!
//! - One conversion rate: the Wilson score interval, which stays inside [0, 1] and
//!   behaves with few conversions, where the textbook Wald interval does not.
//! - Difference of two conversion rates (exposed − control): Newcombe's hybrid score
//!   interval (his method 10), built from the two Wilson intervals. It keeps close to 95%
//!   coverage with small control groups, which a 5–10% holdout usually is.
//! - Relative lift (exposed rate ÷ control rate − 1): the Katz log interval of the
//!   ratio of two proportions, with the Haldane correction (half a conversion added to
//!   each group) when a group has none.
//! - Difference of two means (revenue per profile): Welch's normal interval, with each
//!   group's own variance.
//!
//! Scaled quantities inherit their interval by the same scale: incremental conversions
//! are the exposed group's size times the rate difference, incremental revenue its size
//! times the difference in revenue per profile, incremental ROAS that revenue divided
//! by the exposed group's spend (a known amount, not an estimate).

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// An estimate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn scaled(self, k: f64) -> Interval {
        let (a, b) = (self.low * k, self.high * k);
        Interval {
            estimate: self.estimate * k,
            low: a.min(b),
            high: a.max(b),
        }
    }

    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// Wilson score interval of `x` successes in `n` trials; `None` when `n` is 0.
pub fn wilson(x: u64, n: u64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (x, n) = (x.min(n) as f64, n as f64);
    let p = x / n;
    let z2 = Z95 * Z95;
    let denom = n + z2;
    let center = (x + z2 / 2.0) / denom;
    let half = Z95 / denom * (x * (n - x) / n + z2 / 4.0).sqrt();
    Some(Interval {
        estimate: p,
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval of `x1/n1 − x2/n2`.
pub fn rate_difference(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Interval> {
    let a = wilson(x1, n1)?;
    let b = wilson(x2, n2)?;
    let d = a.estimate - b.estimate;
    Some(Interval {
        estimate: d,
        low: d - ((a.estimate - a.low).powi(2) + (b.high - b.estimate).powi(2)).sqrt(),
        high: d + ((a.high - a.estimate).powi(2) + (b.estimate - b.low).powi(2)).sqrt(),
    })
}

/// Relative lift `(x1/n1) / (x2/n2) − 1` with the Katz log interval; `None` when a
/// group is empty or the control group converted nobody (no finite estimate).
pub fn lift(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Interval> {
    if n1 == 0 || n2 == 0 || x2 == 0 {
        return None;
    }
    let (x1, x2) = (x1.min(n1), x2.min(n2));
    let estimate = (x1 as f64 / n1 as f64) / (x2 as f64 / n2 as f64) - 1.0;
    // Half a conversion more in each group keeps the log finite when the exposed
    // group converted nobody.
    let (a, b, m, n) = if x1 == 0 {
        (
            x1 as f64 + 0.5,
            x2 as f64 + 0.5,
            n1 as f64 + 1.0,
            n2 as f64 + 1.0,
        )
    } else {
        (x1 as f64, x2 as f64, n1 as f64, n2 as f64)
    };
    let ln_rr = ((a / m) / (b / n)).ln();
    let se = (1.0 / a - 1.0 / m + 1.0 / b - 1.0 / n).max(0.0).sqrt();
    Some(Interval {
        estimate,
        low: (ln_rr - Z95 * se).exp() - 1.0,
        high: (ln_rr + Z95 * se).exp() - 1.0,
    })
}

/// Running sums of a per-profile value, for means and variances.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// The sample variance (n − 1 in the denominator); 0 for fewer than two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// Welch's interval of `mean(a) − mean(b)`; `None` when a group is empty.
pub fn mean_difference(a: &Moments, b: &Moments) -> Option<Interval> {
    let d = a.mean()? - b.mean()?;
    let se = (a.variance() / a.n as f64 + b.variance() / b.n as f64).sqrt();
    Some(Interval {
        estimate: d,
        low: d - Z95 * se,
        high: d + Z95 * se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn known_values() {
        // Newcombe (1998), table II, example (a): 56/70 vs 48/80 → 0.2000 (0.0524, 0.3339).
        let d = rate_difference(56, 70, 48, 80).unwrap();
        assert!(close(d.estimate, 0.2), "{d:?}");
        assert!(close(d.low, 0.0524) && close(d.high, 0.3339), "{d:?}");
        // Wilson for 0/10 stays inside [0, 1] and is not degenerate.
        let w = wilson(0, 10).unwrap();
        assert_eq!(w.low, 0.0);
        assert!(close(w.high, 0.2775), "{w:?}");
        // Katz: 20/100 vs 10/100 → RR 2.0, CI (0.9866, 4.0545) → lift (−0.0134, 3.0545).
        let l = lift(20, 100, 10, 100).unwrap();
        assert!(close(l.estimate, 1.0) && close(l.low, -0.0134) && close(l.high, 3.0545));
        assert!(
            lift(5, 100, 0, 100).is_none(),
            "no finite lift without control conversions"
        );
        assert!(lift(0, 100, 4, 100).unwrap().low > -1.0);
        assert!(rate_difference(1, 0, 1, 1).is_none());
    }

    /// Coverage: intervals over many simulated experiments contain the truth about 95%
    /// of the time.
    #[test]
    fn intervals_cover_the_truth_about_95_percent_of_the_time() {
        let mut rng = StdRng::seed_from_u64(7);
        let (p1, p2, n1, n2) = (0.12, 0.09, 3_000u64, 400u64);
        let reps = 1_000;
        let (mut diff_in, mut lift_in, mut mean_in) = (0, 0, 0);
        for _ in 0..reps {
            let (mut a, mut b) = (Moments::default(), Moments::default());
            let mut draw = |n: u64, p: f64, m: &mut Moments| {
                let mut x = 0;
                for _ in 0..n {
                    let hit = rng.random::<f64>() < p;
                    x += u64::from(hit);
                    m.add(if hit {
                        20.0 + rng.random::<f64>() * 40.0
                    } else {
                        0.0
                    });
                }
                x
            };
            let x1 = draw(n1, p1, &mut a);
            let x2 = draw(n2, p2, &mut b);
            diff_in += rate_difference(x1, n1, x2, n2).unwrap().contains(p1 - p2) as u32;
            lift_in += lift(x1, n1, x2, n2).is_some_and(|l| l.contains(p1 / p2 - 1.0)) as u32;
            // Revenue per profile: p × mean order of 40.
            let truth = (p1 - p2) * 40.0;
            mean_in += mean_difference(&a, &b).unwrap().contains(truth) as u32;
        }
        for (name, hits) in [
            ("difference", diff_in),
            ("lift", lift_in),
            ("mean", mean_in),
        ] {
            let coverage = f64::from(hits) / reps as f64;
            assert!((0.925..=0.975).contains(&coverage), "{name}: {coverage}");
        }
    }

    #[test]
    fn moments_and_scaling() {
        let mut m = Moments::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            m.add(x);
        }
        assert_eq!(m.mean(), Some(2.5));
        assert!((m.variance() - 5.0 / 3.0).abs() < 1e-12);
        let i = Interval {
            estimate: 1.0,
            low: -1.0,
            high: 2.0,
        }
        .scaled(-2.0);
        assert_eq!((i.estimate, i.low, i.high), (-2.0, -4.0, 2.0));
    }
}
