//! The decision response, serialised straight from the decision kept for replays.
//!
//! JSON answers, the common case, take a fast path ([`DecisionView::write_json`]): an
//! offer's fixed members were rendered to JSON when its campaign was compiled, so a
//! response copies them instead of escaping every headline and URL again, and the
//! tracking URLs are written from the pre-escaped base URL and the token (unpadded
//! base64url, which needs no escaping). It writes exactly the bytes the generic
//! `Serialize` path writes (a test compares them); MessagePack and `explain`
//! answers take the generic path.

use super::{Decision, Explain};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::fmt;
use std::io::Write;

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

impl<'a> DecisionView<'a> {
    /// Offer `i` exactly as this endpoint shows it, for answers of another shape.
    pub fn offer(&'a self, i: usize) -> impl Serialize + 'a {
        OfferView {
            view: self,
            offer: &self.decision.offers[i],
        }
    }

    /// The URL of `event` (`impression`, `click`, `purchase`) for offer `i`.
    pub fn tracking_url(&self, i: usize, event: &'static str) -> String {
        TrackingUrl {
            base: self.public_url,
            event,
            token: &self.decision.offers[i].token,
        }
        .to_string()
    }
}

/// The fixed members of an offer of `creative` (see the module docs), as JSON.
pub fn json_members(
    campaign: &str,
    advertiser: &str,
    creative: &crate::campaign::Creative,
) -> Box<str> {
    use serde_json::to_string as json;
    let text = |s: &str| json(s).unwrap_or_default();
    let mut out = format!(
        "\"campaign_id\":{},\"creative_id\":{},\"advertiser_id\":{},\"kind\":{},\"headline\":{}",
        text(campaign),
        text(&creative.id),
        text(advertiser),
        text(creative.kind.as_str()),
        text(&creative.headline),
    );
    for (name, value) in [
        ("body", &creative.body),
        ("image_url", &creative.image_url),
        ("cta", &creative.cta),
    ] {
        if let Some(v) = value {
            out.push_str(&format!(",\"{name}\":{}", text(v)));
        }
    }
    out.into_boxed_str()
}

impl DecisionView<'_> {
    /// The response as JSON into `out`; `false` (and nothing written) when it needs
    /// the generic path (`explain`).
    pub fn write_json(&self, out: &mut Vec<u8>) -> bool {
        if self.explain.is_some() {
            return false;
        }
        // The base URL is the deployment's, escaped once per response (it is short).
        let base = serde_json::to_string(self.public_url).unwrap_or_default();
        let base = &base[1..base.len() - 1];
        out.extend_from_slice(b"{\"decision_id\":");
        if serde_json::to_writer(&mut *out, &self.decision.id).is_err() {
            out.clear();
            return false;
        }
        out.extend_from_slice(b",\"offers\":[");
        for (n, o) in self.decision.offers.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let w = &o.winner;
            let creative = &w.campaign.creatives[w.creative];
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{{\"slot\":{},", w.slot);
            out.extend_from_slice(creative.json_members.as_bytes());
            if let Some(p) = &creative.doc.product {
                out.extend_from_slice(b",\"product\":");
                let product = Product {
                    sku: &p.sku,
                    name: &p.name,
                    price: p.price.to_major(),
                    currency: self.currency,
                    available: true,
                    stock: o.stock,
                };
                if serde_json::to_writer(&mut *out, &product).is_err() {
                    out.clear();
                    return false;
                }
            }
            out.extend_from_slice(b",\"tracking\":{");
            let events: &[&str] = if o.purchasable {
                &["impression", "click", "purchase"]
            } else {
                &["impression", "click"]
            };
            for (i, event) in events.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(event.as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(base.as_bytes());
                out.extend_from_slice(b"/v1/events/");
                out.extend_from_slice(event.as_bytes());
                out.extend_from_slice(b"?t=");
                out.extend_from_slice(o.token.as_bytes());
                out.push(b'"');
            }
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
        if self.test {
            out.extend_from_slice(b",\"test\":true");
        }
        out.push(b'}');
        true
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_members_are_valid_json_whatever_the_text() {
        let creative = crate::campaign::Creative {
            id: "cr-\"1\"".into(),
            kind: crate::campaign::CreativeKind::Offer,
            headline: "Say \"hi\" \\ to <b>caf\u{e9}</b>\n\u{1}".into(),
            body: None,
            image_url: None,
            cta: Some("Go →".into()),
            click_url: "https://shop.example/x".into(),
            product: None,
        };
        let members = json_members("cmp-1", "adv", &creative);
        let parsed: serde_json::Value = serde_json::from_str(&format!("{{{members}}}")).unwrap();
        assert_eq!(parsed["headline"], creative.headline.as_str());
        assert_eq!(parsed["creative_id"], "cr-\"1\"");
        assert_eq!(parsed["cta"], "Go →");
        assert!(parsed.get("body").is_none() && parsed.get("image_url").is_none());
    }
}
