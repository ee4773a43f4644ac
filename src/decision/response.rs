//! The decision response, serialised straight from the decision kept for replays.

use super::{Decision, Explain};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::fmt;

/// The response body: `{"decision_id", "offers", "explain"?, "test"?}`.
pub struct DecisionView<'a> {
    pub decision: &'a Decision,
    pub explain: Option<&'a Explain>,
    pub test: bool,
    pub public_url: &'a str,
    pub currency: &'a str,
}

struct Offers<'a>(&'a DecisionView<'a>);

/// A tracking URL written straight into the output without an intermediate String.
struct TrackingUrl<'a> {
    base: &'a str,
    event: &'static str,
    token: &'a str,
}

impl fmt::Display for TrackingUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/v1/events/{}?t={}", self.base, self.event, self.token)
    }
}

#[derive(Serialize)]
struct Product<'a> {
    sku: &'a str,
    name: &'a str,
    price: f64,
    currency: &'a str,
    available: bool,
    /// Units left at the request's location, for products whose stock is reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    stock: Option<i64>,
}

impl Serialize for DecisionView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("decision_id", &self.decision.id)?;
        m.serialize_entry("offers", &Offers(self))?;
        if let Some(e) = self.explain {
            m.serialize_entry("explain", e)?;
        }
        if self.test {
            m.serialize_entry("test", &true)?;
        }
        m.end()
    }
}

impl Serialize for Offers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let mut seq = s.serialize_seq(Some(view.decision.offers.len()))?;
        for o in &view.decision.offers {
            seq.serialize_element(&OfferView { view, offer: o })?;
        }
        seq.end()
    }
}

struct OfferView<'a> {
    view: &'a DecisionView<'a>,
    offer: &'a super::ServedOffer,
}

impl Serialize for OfferView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let w = &self.offer.winner;
        let c = &w.campaign;
        let cr = &c.creatives[w.creative].doc;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("slot", &w.slot)?;
        m.serialize_entry("campaign_id", &*c.id)?;
        m.serialize_entry("creative_id", &cr.id)?;
        m.serialize_entry("advertiser_id", &*c.advertiser)?;
        m.serialize_entry("kind", cr.kind.as_str())?;
        m.serialize_entry("headline", &cr.headline)?;
        if let Some(b) = &cr.body {
            m.serialize_entry("body", b)?;
        }
        if let Some(u) = &cr.image_url {
            m.serialize_entry("image_url", u)?;
        }
        if let Some(t) = &cr.cta {
            m.serialize_entry("cta", t)?;
        }
        if let Some(p) = &cr.product {
            m.serialize_entry(
                "product",
                &Product {
                    sku: &p.sku,
                    name: &p.name,
                    price: p.price.to_major(),
                    currency: self.view.currency,
                    available: true,
                    stock: self.offer.stock,
                },
            )?;
        }
        let base = self.view.public_url;
        let token = self.offer.token.as_str();
        let purchase = self.offer.purchasable;
        m.serialize_entry(
            "tracking",
            &Tracking {
                base,
                token,
                purchase,
            },
        )?;
        m.end()
    }
}

struct Tracking<'a> {
    base: &'a str,
    token: &'a str,
    /// Add the purchase URL (products with reported stock).
    purchase: bool,
}

impl Serialize for Tracking<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let events: &[&'static str] = if self.purchase {
            &["impression", "click", "purchase"]
        } else {
            &["impression", "click"]
        };
        let mut m = s.serialize_map(Some(events.len()))?;
        for &event in events {
            let url = TrackingUrl {
                base: self.base,
                event,
                token: self.token,
            };
            m.serialize_key(event)?;
            m.serialize_value(&Display(&url))?;
        }
        m.end()
    }
}

/// Serialises any `Display` as a string.
struct Display<'a, T: fmt::Display>(&'a T);

impl<T: fmt::Display> Serialize for Display<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}
