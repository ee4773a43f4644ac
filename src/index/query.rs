//! The facts of one decision request that targeting looks at, normalised once.

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
