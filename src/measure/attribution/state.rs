//! What is remembered per profile, kept small: a million profiles are common, and most
//! hold one or two entries at a time.

use crate::campaign::Channel;

/// One thing remembered about a profile: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Entry {
    /// A decision no event has arrived for yet: its id (folded to 64 bits) and the order
    /// it was made for. Its first impression or click takes its place.
    Offer { decision: u64, txn: u64, ts: i64 },
    /// An impression or click, with its decision and that decision's order.
    Seen {
        campaign: u32,
        click: bool,
        channel: Channel,
        ts: i64,
        decision: u64,
        txn: u64,
    },
    /// The profile's holdout group for a campaign, from its first assignment.
    Group {
        campaign: u32,
        control: bool,
        converted: bool,
        in_period: bool,
        since: i64,
        txn: u64,
        revenue: i64,
    },
}

impl Entry {
    /// The decision an offer or exposure came from, and its order.
    pub fn decision(&self) -> Option<(u64, u64)> {
        match *self {
            Entry::Offer { decision, txn, .. } | Entry::Seen { decision, txn, .. } => {
                Some((decision, txn))
            }
            Entry::Group { .. } => None,
        }
    }
}

/// A profile's entries: none and one held inline, more in a vector that grows by half
/// rather than doubling (a `Vec`'s first allocation would hold four).
#[derive(Clone, Debug, Default)]
pub(super) enum State {
    #[default]
    Empty,
    One(Entry),
    Many(Vec<Entry>),
}

impl State {
    pub fn entries(&self) -> &[Entry] {
        match self {
            State::Empty => &[],
            State::One(e) => std::slice::from_ref(e),
            State::Many(v) => v,
        }
    }

    pub fn entries_mut(&mut self) -> &mut [Entry] {
        match self {
            State::Empty => &mut [],
            State::One(e) => std::slice::from_mut(e),
            State::Many(v) => v,
        }
    }

    /// Whether the next push must allocate.
    pub fn is_full(&self) -> bool {
        match self {
            State::Empty => false,
            State::One(_) => true,
            State::Many(v) => v.len() == v.capacity(),
        }
    }

    pub fn push(&mut self, e: Entry) {
        match self {
            State::Empty => *self = State::One(e),
            State::One(first) => {
                *self = State::Many(vec![*first, e]);
            }
            State::Many(v) => {
                if v.len() == v.capacity() {
                    v.reserve_exact((v.len() / 2).max(1));
                }
                v.push(e);
            }
        }
    }

    /// Keeps the entries `keep` accepts, and gives back memory no longer needed.
    pub fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        match self {
            State::Empty => {}
            State::One(e) => {
                if !keep(e) {
                    *self = State::Empty;
                }
            }
            State::Many(v) => {
                v.retain(|e| keep(e));
                match v.len() {
                    0 => *self = State::Empty,
                    1 => *self = State::One(v[0]),
                    n if v.capacity() > n + n / 2 + 1 => v.shrink_to_fit(),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_states_stay_small() {
        assert!(std::mem::size_of::<Entry>() <= 32);
        assert!(std::mem::size_of::<State>() <= 40);
    }

    #[test]
    fn a_state_grows_and_shrinks_back() {
        let offer = |ts| Entry::Offer {
            decision: ts as u64,
            txn: 1,
            ts,
        };
        let mut s = State::default();
        assert!(s.entries().is_empty() && !s.is_full());
        for ts in 0..10 {
            s.push(offer(ts));
        }
        assert_eq!(s.entries().len(), 10);
        s.retain(|e| matches!(e, Entry::Offer { ts, .. } if *ts >= 9));
        assert!(matches!(s, State::One(_)));
        assert_eq!(s.entries(), &[offer(9)]);
        s.retain(|_| false);
        assert!(matches!(s, State::Empty));
    }
}
