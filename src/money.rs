//! Money: decimal major units at the edges, integer micros inside.
//!
//! Requests and campaign documents carry money as JSON numbers in major units
//! (`129.99`). Floating point is fine for transport but not for budgets that are
//! charged millions of times, so every amount is converted once, at the door, into
//! integer micros (millionths of the deployment currency's major unit).

use serde::Serialize;

/// Micros per major unit of currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// The largest amount accepted anywhere (one trillion major units): far beyond any
/// basket or budget, and small enough that sums of many amounts cannot overflow i64.
pub const MAX_MAJOR: f64 = 1e12;

/// An amount of money in micros of the deployment currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    /// Converts a decimal amount in major units. `None` for negative, non-finite or
    /// absurdly large amounts: the callers turn that into a 400 naming the field.
    pub fn from_major(major: f64) -> Option<Micros> {
        if !major.is_finite() || !(0.0..=MAX_MAJOR).contains(&major) {
            return None;
        }
        Some(Micros((major * MICROS_PER_UNIT as f64).round() as i64))
    }

    /// The amount in major units, for responses.
    pub fn to_major(self) -> f64 {
        self.0 as f64 / MICROS_PER_UNIT as f64
    }

    pub fn saturating_add(self, other: Micros) -> Micros {
        Micros(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Micros) -> Micros {
        Micros(self.0.saturating_sub(other.0))
    }
}

impl Serialize for Micros {
    /// Serialised as major units so that responses read like requests.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_major())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_major_units_to_micros_without_float_drift() {
        assert_eq!(Micros::from_major(129.99), Some(Micros(129_990_000)));
        assert_eq!(Micros::from_major(0.01), Some(Micros(10_000)));
        assert_eq!(Micros::from_major(0.0), Some(Micros::ZERO));
        assert_eq!(Micros(19_990_000).to_major(), 19.99);
    }

    #[test]
    fn refuses_negative_non_finite_and_absurd_amounts() {
        assert_eq!(Micros::from_major(-0.01), None);
        assert_eq!(Micros::from_major(f64::NAN), None);
        assert_eq!(Micros::from_major(f64::INFINITY), None);
        assert_eq!(Micros::from_major(2e12), None);
    }
}
