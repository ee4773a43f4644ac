//! Decision ids: unique across restarts and nodes, sortable by time, cheap to mint.
//!
//! 128 bits: 48 bits of milliseconds since the epoch, 32 random bits drawn once per
//! process, and a 48-bit counter. Two processes collide only if they start in the same
//! millisecond with the same random draw; the counter makes ids within one process
//! unique without touching the RNG on the hot path. Shown as `d_` plus 26 characters of
//! Crockford base32, like a ULID.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecisionId(pub u128);

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static NODE: OnceLock<u32> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl DecisionId {
    /// A new id for a decision received at `now_ms`.
    pub fn mint(now_ms: i64) -> DecisionId {
        let node = *NODE.get_or_init(rand::random::<u32>);
        let seq = COUNTER.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
        let ms = (now_ms.max(0) as u128) & ((1 << 48) - 1);
        DecisionId((ms << 80) | ((node as u128) << 48) | seq as u128)
    }

    /// Parses `d_` + 26 Crockford base32 characters.
    pub fn parse(s: &str) -> Option<DecisionId> {
        let body = s.strip_prefix("d_")?;
        if body.len() != 26 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, b) in body.bytes().enumerate() {
            let d = ALPHABET.iter().position(|&a| a == b.to_ascii_uppercase())? as u128;
            // The first character carries only 3 bits (26 × 5 = 130).
            if i == 0 && d > 7 {
                return None;
            }
            v = (v << 5) | d;
        }
        Some(DecisionId(v))
    }

    pub fn halves(self) -> (u64, u64) {
        ((self.0 >> 64) as u64, self.0 as u64)
    }

    pub fn from_halves(hi: u64, lo: u64) -> DecisionId {
        DecisionId(((hi as u128) << 64) | lo as u128)
    }

    /// When the decision was minted, in milliseconds since the epoch.
    pub fn minted_ms(self) -> i64 {
        (self.0 >> 80) as i64
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 28];
        buf[0] = b'd';
        buf[1] = b'_';
        for i in 0..26 {
            let shift = 5 * (25 - i);
            buf[2 + i] = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        // The buffer holds only ASCII from ALPHABET.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for DecisionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sortable_and_round_trip() {
        let a = DecisionId::mint(1_763_700_000_000);
        let b = DecisionId::mint(1_763_700_000_000);
        let c = DecisionId::mint(1_763_700_000_001);
        assert_ne!(a, b);
        assert!(b < c, "later ids sort after earlier ones");
        let s = a.to_string();
        assert_eq!(s.len(), 28);
        assert_eq!(DecisionId::parse(&s), Some(a));
        assert_eq!(a.minted_ms(), 1_763_700_000_000);
        assert_eq!(DecisionId::parse("d_nope"), None);
        assert_eq!(DecisionId::parse(&format!("d_Z{}", &s[3..])), None);
    }
}
