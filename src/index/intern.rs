//! Value numbering: every string a snapshot's campaigns target gets a small number,
//! so the decision path compares `u32`s instead of following pointers to string bytes.
//!
//! Each dimension (countries, categories, advertisers, ...) is numbered separately, from
//! 0 upwards, so a dimension's numbers can index dense per-value tables (the postings).
//! A request value the snapshot never saw has no number: it cannot equal any targeted
//! value, which is exactly what matching by string would have concluded.
//!
//! A snapshot has two layers (see [`super::delta`]): the base's dictionary and a small
//! overlay for the values only the delta's campaigns use. The overlay numbers continue
//! where the base's end ([`Dictionary::over`]) and never repeat a value the base has
//! ([`Interner::intern_over`]), so one number means one value across both layers and a
//! request numbered once can be compared with campaigns of either.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// One-shot xxh3 over each write, chained through the seed. A request's values are
/// looked up once each per decision, and `Xxh3Builder`'s streaming state costs a
/// copy of several hundred bytes per hash, more than hashing a short key.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    /// `str` hashes as its bytes then a `0xff` terminator: mixing that byte in with
    /// a multiply is enough (the bytes are already hashed) and costs no second call.
    fn write_u8(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Keys come from validated campaign documents, not from requests, so a fast non-keyed
/// hash is safe here: a request can only look keys up, never insert them.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Strings to dense numbers for one dimension.
#[derive(Default)]
pub struct Interner {
    ids: FastMap<Box<str>, u32>,
    /// The first number given out: 0 in a base layer; in an overlay, where the base's
    /// numbers end.
    first: u32,
}

impl Interner {
    /// The number of `value`, assigning the next one if it is new.
    pub fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.ids.len())
            .ok()
            .and_then(|n| n.checked_add(self.first))
            .expect("fewer than 2^32 distinct values");
        self.ids.insert(value.into(), id);
        id
    }

    /// The number of `value` in `base` if it has one, else in this overlay (assigning
    /// the next one if new): a value keeps its base number in every delta built over it.
    pub fn intern_over(&mut self, base: Option<&Interner>, value: &str) -> u32 {
        match base.and_then(|b| b.get(value)) {
            Some(id) => id,
            None => self.intern(value),
        }
    }

    /// The number of `value`, if any campaign uses it.
    pub fn get(&self, value: &str) -> Option<u32> {
        if self.ids.is_empty() {
            // The common case for SKUs, brands and stores: skip hashing entirely.
            return None;
        }
        self.ids.get(value).copied()
    }

    /// One past the highest number this interner (with the base under it, for an
    /// overlay) can give: every number is below this, so it sizes per-value tables.
    pub fn end(&self) -> usize {
        self.first as usize + self.ids.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.ids.iter().map(|(k, &v)| (&**k, v))
    }
}

/// The targeted dimensions, in the order `matches` checks them. A campaign's lists are
/// stored in this order too (see [`super::hot`]), so checking walks them front to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Placements,
    Countries,
    Regions,
    Stores,
    AnyCategories,
    NoneCategories,
    Skus,
    Brands,
    LoyaltyTiers,
}

impl List {
    pub const ALL: [List; 9] = [
        List::Placements,
        List::Countries,
        List::Regions,
        List::Stores,
        List::AnyCategories,
        List::NoneCategories,
        List::Skus,
        List::Brands,
        List::LoyaltyTiers,
    ];

    pub fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// One interner per kind of value. Both category lists share one numbering: a
/// request's categories are compared against either.
#[derive(Default)]
pub struct Dictionary {
    pub placements: Interner,
    pub countries: Interner,
    pub regions: Interner,
    pub stores: Interner,
    pub categories: Interner,
    pub skus: Interner,
    pub brands: Interner,
    pub tiers: Interner,
    pub advertisers: Interner,
    /// Competitive (separation) categories, already lower-case.
    pub separations: Interner,
}

impl Dictionary {
    /// An empty overlay for `base`: each dimension numbers from where `base`'s ends.
    pub fn over(base: &Dictionary) -> Dictionary {
        let after = |i: &Interner| Interner {
            ids: FastMap::default(),
            first: u32::try_from(i.end()).expect("fewer than 2^32 distinct values"),
        };
        Dictionary {
            placements: after(&base.placements),
            countries: after(&base.countries),
            regions: after(&base.regions),
            stores: after(&base.stores),
            categories: after(&base.categories),
            skus: after(&base.skus),
            brands: after(&base.brands),
            tiers: after(&base.tiers),
            advertisers: after(&base.advertisers),
            separations: after(&base.separations),
        }
    }

    /// The interner a targeting list's values are numbered in.
    pub fn list(&self, list: List) -> &Interner {
        match list {
            List::Placements => &self.placements,
            List::Countries => &self.countries,
            List::Regions => &self.regions,
            List::Stores => &self.stores,
            List::AnyCategories | List::NoneCategories => &self.categories,
            List::Skus => &self.skus,
            List::Brands => &self.brands,
            List::LoyaltyTiers => &self.tiers,
        }
    }

    pub fn list_mut(&mut self, list: List) -> &mut Interner {
        match list {
            List::Placements => &mut self.placements,
            List::Countries => &mut self.countries,
            List::Regions => &mut self.regions,
            List::Stores => &mut self.stores,
            List::AnyCategories | List::NoneCategories => &mut self.categories,
            List::Skus => &mut self.skus,
            List::Brands => &mut self.brands,
            List::LoyaltyTiers => &mut self.tiers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_and_stable() {
        let mut i = Interner::default();
        assert_eq!(i.get("US"), None);
        assert_eq!(i.intern("US"), 0);
        assert_eq!(i.intern("CA"), 1);
        assert_eq!(i.intern("US"), 0);
        assert_eq!(i.get("CA"), Some(1));
        assert_eq!(i.get("us"), None, "exact, case-sensitive");
        assert_eq!(i.end(), 2);
    }

    #[test]
    fn an_overlay_continues_the_base_numbers_and_never_repeats_a_base_value() {
        let mut base = Dictionary::default();
        base.countries.intern("US");
        base.countries.intern("CA");
        let mut over = Dictionary::over(&base);
        let (b, o) = (Some(&base.countries), &mut over.countries);
        assert_eq!(o.intern_over(b, "CA"), 1, "a base value keeps its number");
        assert_eq!(o.intern_over(b, "GB"), 2);
        assert_eq!(o.intern_over(b, "DE"), 3);
        assert_eq!(o.intern_over(b, "GB"), 2);
        assert_eq!(o.get("CA"), None, "base values stay out of the overlay");
        assert_eq!(o.end(), 4);
        assert_eq!(over.placements.end(), 0);
    }
}
