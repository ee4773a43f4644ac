//! Kevel's decision response, built from aftercart's decisions.
//!
//! `{"user": {"key"}, "decisions": {DIV: decision | [decision, …] | null}}`: one
//! decision per placement, an array when the placement asked for `count` > 1 (as
//! many as were filled), `null` when nothing was. Each decision carries the stable
//! numbers of [`super::ids`], aftercart's own tracking URLs as `impressionUrl` and
//! `clickUrl` (fetching them counts exactly as on aftercart's own endpoint), the
//! aftercart offer as a `raw` content (`data` the offer with its `decision_id`, `body`
//! the same as JSON text), first-price `pricing`, and no custom `events`.

use super::ids::{Entity, KevelIds, creative_key};
use crate::campaign::BidModel;
use crate::decision::DecisionView;
use serde::Serialize;

/// The response body.
#[derive(Serialize)]
pub struct KevelResponse {
    pub user: UserOut,
    /// Placements in request order (a JSON object keyed by `divName`).
    #[serde(serialize_with = "as_map")]
    pub decisions: Vec<(String, Answer)>,
}

#[derive(Serialize)]
pub struct UserOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One placement's answer.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Answer {
    NoFill(()),
    One(Box<KevelDecision>),
    Many(Vec<KevelDecision>),
}

fn as_map<S: serde::Serializer>(v: &[(String, Answer)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, a)| (k, a)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KevelDecision {
    pub ad_id: u32,
    pub creative_id: u32,
    pub flight_id: u32,
    pub campaign_id: u32,
    pub advertiser_id: u32,
    pub priority_id: u32,
    pub click_url: String,
    pub impression_url: String,
    pub contents: Vec<Content>,
    pub pricing: Pricing,
    pub events: Vec<()>,
}

#[derive(Serialize)]
pub struct Content {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: serde_json::Value,
    pub body: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// The bid: per thousand impressions (cpm) or per click (cpc).
    pub price: f64,
    /// First price: what the winner pays is its bid.
    pub clear_price: f64,
    /// Kevel's rate types: 2 CPM, 3 CPC.
    pub rate_type: u8,
    /// The value of a thousand impressions as ranked (cpc: bid × predicted CTR × 1000).
    #[serde(rename = "eCPM")]
    pub ecpm: f64,
}

/// The entities the offers of `view` need numbers for.
pub fn entities(view: &DecisionView) -> Vec<(Entity, String)> {
    let mut out = Vec::with_capacity(view.decision.offers.len() * 4);
    for o in &view.decision.offers {
        let c = &o.winner.campaign;
        out.push((Entity::Advertiser, c.advertiser.to_string()));
        out.push((Entity::Campaign, c.id.to_string()));
        let creative = &c.creatives[o.winner.creative].id;
        out.push((Entity::Creative, creative_key(&c.id, creative)));
        out.push((Entity::Priority, c.priority.to_string()));
    }
    out
}

/// The answer for one placement, or `None` if an entity has no number yet (the
/// caller numbers [`entities`] first).
pub fn answer(view: &DecisionView, multi: bool, ids: &KevelIds) -> Option<Answer> {
    let mut decisions = Vec::with_capacity(view.decision.offers.len());
    for (i, o) in view.decision.offers.iter().enumerate() {
        let c = &o.winner.campaign;
        let creative = &c.creatives[o.winner.creative].id;
        let campaign = ids.get(Entity::Campaign, &c.id)?;
        let creative = ids.get(Entity::Creative, &creative_key(&c.id, creative))?;
        let mut data = serde_json::to_value(view.offer(i)).ok()?;
        if let serde_json::Value::Object(m) = &mut data {
            m.insert(
                "decision_id".into(),
                serde_json::to_value(view.decision.id).ok()?,
            );
        }
        let body = serde_json::to_string(&data).ok()?;
        let bid = c.bid.amount.to_major();
        decisions.push(KevelDecision {
            ad_id: creative,
            creative_id: creative,
            flight_id: campaign,
            campaign_id: campaign,
            advertiser_id: ids.get(Entity::Advertiser, &c.advertiser)?,
            priority_id: ids.get(Entity::Priority, &c.priority.to_string())?,
            click_url: view.tracking_url(i, "click"),
            impression_url: view.tracking_url(i, "impression"),
            contents: vec![Content {
                kind: "raw",
                data,
                body,
            }],
            pricing: Pricing {
                price: bid,
                clear_price: bid,
                rate_type: match c.bid.model {
                    BidModel::Cpm => 2,
                    BidModel::Cpc => 3,
                },
                ecpm: crate::money::Micros(o.winner.ecpm).to_major(),
            },
            events: Vec::new(),
        });
    }
    Some(match (decisions.len(), multi) {
        (0, _) => Answer::NoFill(()),
        (_, true) => Answer::Many(decisions),
        (_, false) => Answer::One(Box::new(decisions.remove(0))),
    })
}
