//! The facts of one decision request that targeting looks at, normalised once, and
//! the same facts as one snapshot's value numbers ([`NumberedQuery`]).

use super::intern::{Dictionary, Interner};
use crate::campaign::Channel;
use crate::money::Micros;

/// What a campaign's targeting can be matched against. Strings that compare
/// case-insensitively are already lower-cased (brands, categories, tiers) or
/// upper-cased (countries, regions), so matching is plain equality.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub channel: Option<Channel>,
    pub placement: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub store_id: Option<String>,
    /// Every whole-segment prefix of every basket category, deduplicated:
    /// `electronics/audio` contributes `electronics` and `electronics/audio`.
    pub category_prefixes: Vec<String>,
    pub skus: Vec<String>,
    pub brands: Vec<String>,
    /// The order total, when the request is in the deployment's currency.
    pub order_total: Option<Micros>,
    pub loyalty_tier: Option<String>,
    pub new_customer: Option<bool>,
    /// The request carries an identifier usable for caps and holdouts.
    pub identified: bool,
    /// Milliseconds since the epoch: the server's receive time.
    pub now_ms: i64,
}

impl Query {
    /// Adds a basket category (any case) and all its whole-segment prefixes.
    pub fn add_category(&mut self, category: &str) {
        let lower = category.trim().to_lowercase();
        let mut end = 0;
        for seg in lower.split('/') {
            end += seg.len();
            let prefix = &lower[..end];
            if !self.category_prefixes.iter().any(|c| c == prefix) {
                self.category_prefixes.push(prefix.to_string());
            }
            end += 1; // the '/'
        }
    }

    pub fn add_brand(&mut self, brand: &str) {
        let lower = brand.trim().to_lowercase();
        if !self.brands.contains(&lower) {
            self.brands.push(lower);
        }
    }

    pub fn add_sku(&mut self, sku: &str) {
        if !self.skus.iter().any(|s| s == sku) {
            self.skus.push(sku.to_string());
        }
    }

    pub fn has_category(&self, category: &str) -> bool {
        self.category_prefixes.iter().any(|c| c == category)
    }
}

/// A [`Query`] in the value numbers of one snapshot (see `index::intern`), built
/// once per request so that checking a campaign compares integers only.
///
/// A value the snapshot does not know is dropped: it cannot equal any targeted value.
/// For a single value that means "absent", which fails a non-empty list just as a
/// missing field does; for a basket list it is simply one value fewer.
#[derive(Clone, Debug, Default)]
pub struct NumberedQuery {
    pub channel: Option<Channel>,
    pub placement: Option<u32>,
    pub country: Option<u32>,
    pub region: Option<u32>,
    pub store: Option<u32>,
    /// Whole-segment prefixes of the basket categories, distinct.
    pub categories: Vec<u32>,
    pub skus: Vec<u32>,
    pub brands: Vec<u32>,
    pub order_total: Option<Micros>,
    pub loyalty_tier: Option<u32>,
    pub new_customer: Option<bool>,
    pub identified: bool,
    pub now_ms: i64,
}

impl NumberedQuery {
    /// Numbers `q` in a snapshot's `base` dictionary and its delta's `overlay` (see
    /// [`Dictionary::over`]), reusing this value's buffers.
    pub(crate) fn fill(&mut self, q: &Query, base: &Dictionary, overlay: &Dictionary) {
        let layers = |pick: fn(&Dictionary) -> &Interner| Layers(pick(base), pick(overlay));
        let one = |i: Layers, v: &Option<String>| v.as_deref().and_then(|v| i.get(v));
        self.channel = q.channel;
        self.placement = layers(|d| &d.placements).get(&q.placement);
        self.country = one(layers(|d| &d.countries), &q.country);
        self.region = one(layers(|d| &d.regions), &q.region);
        self.store = one(layers(|d| &d.stores), &q.store_id);
        let categories = layers(|d| &d.categories);
        number_all(categories, &q.category_prefixes, &mut self.categories);
        number_all(layers(|d| &d.skus), &q.skus, &mut self.skus);
        number_all(layers(|d| &d.brands), &q.brands, &mut self.brands);
        self.order_total = q.order_total;
        self.loyalty_tier = one(layers(|d| &d.tiers), &q.loyalty_tier);
        self.new_customer = q.new_customer;
        self.identified = q.identified;
        self.now_ms = q.now_ms;
    }
}

/// One dimension's interners in both layers. The overlay is asked only when the base
/// does not know a value; it is usually empty, and then answers without hashing.
#[derive(Clone, Copy)]
struct Layers<'a>(&'a Interner, &'a Interner);

impl Layers<'_> {
    #[inline]
    fn get(self, value: &str) -> Option<u32> {
        self.0.get(value).or_else(|| self.1.get(value))
    }
}

/// The known values of `values`, each once: a repeated request value must not post a
/// campaign twice.
fn number_all(interner: Layers, values: &[String], out: &mut Vec<u32>) {
    out.clear();
    for id in values.iter().filter_map(|v| interner.get(v)) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_by_whole_segments_case_insensitively() {
        let mut q = Query::default();
        q.add_category("Electronics/Audio");
        assert!(q.has_category("electronics"));
        assert!(q.has_category("electronics/audio"));
        assert!(!q.has_category("electronicsx"));
        assert!(!q.has_category("electronics/aud"));
        assert!(!q.has_category("audio"));
    }
}
