//! Kevel's decision request, as its SDKs send it, and its translation into one
//! aftercart decision request per placement.
//!
//! Only the fields aftercart acts on are read; every other field of Kevel's request
//! and placement (`zoneIds`, `adTypes`, `siteId`, `networkId`, `ecpmPartition`,
//! `eventIds`, `flightViewTimes`, `enableBotFiltering`, …, and whatever Kevel adds
//! later) is accepted, whatever its value, and ignored. aftercart's own endpoint refuses
//! unknown fields; this one cannot, because Kevel's clients send all of those.
//!
//! The mapping (see `docs/kevel.md` for every field):
//!
//! - each placement becomes a decision: `properties.placement` (default: `divName`),
//!   `properties.channel` (default `online`), `count` slots (default 1), and
//!   `properties.transaction`, `.customer`, `.context`, `.consent` in aftercart's own
//!   shapes, checked as strictly as on `POST /v1/decisions`;
//! - a placement without `properties.transaction.id` gets a fresh transaction id, so
//!   it is a new decision (Kevel has no replays);
//! - `user.key` is the identifier `customer_id`, `deviceID` the identifier `device_id`;
//! - `keywords` are matched like basket categories (`targeting.basket.any_categories`);
//! - `consent.gdpr` stands for both consents where `properties.consent` says nothing.
//!
//! Problems are reported with Kevel's paths (`placements[1].count`,
//! `placements[0].properties.transaction.total`, `user.key`), all at once.

use crate::decision::{ConsentIn, Context, Customer, DecisionRequest, Ids, Transaction};
use crate::validation::{Detail, index, join};
use serde::Deserialize;

/// The request. Unknown fields are ignored on purpose (see the module docs).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KevelRequest {
    pub placements: Option<Vec<Placement>>,
    pub user: Option<User>,
    pub keywords: Option<Vec<String>>,
    pub consent: Option<KevelConsent>,
    #[serde(rename = "deviceID")]
    pub device_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub div_name: Option<String>,
    pub count: Option<i64>,
    pub properties: Option<Properties>,
}

/// Kevel's custom-targeting map. The keys below are aftercart's; any other key is
/// Kevel custom targeting, which aftercart does not have, and is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Properties {
    pub placement: Option<String>,
    pub channel: Option<String>,
    pub transaction: Option<Transaction>,
    pub customer: Option<Customer>,
    pub context: Option<Context>,
    pub consent: Option<ConsentIn>,
}

#[derive(Debug, Default, Deserialize)]
pub struct User {
    pub key: Option<String>,
}

/// Kevel's `consent` object: `{"gdpr": bool}`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct KevelConsent {
    pub gdpr: Option<bool>,
}

/// One placement, ready to decide.
#[derive(Debug)]
pub struct Planned {
    /// Where the answer goes in the response's `decisions`.
    pub div_name: String,
    /// `count` was given and above 1: the answer is an array.
    pub multi: bool,
    pub request: DecisionRequest,
    origin: Origin,
}

/// Where the placement's fields came from, to name them in errors.
#[derive(Debug)]
struct Origin {
    index: usize,
    placement_from_div: bool,
    customer_id_from_user: bool,
    device_id_from_request: bool,
}

impl Planned {
    /// A problem aftercart's validation found, told in Kevel's terms.
    pub fn kevel_detail(&self, d: Detail) -> Detail {
        let path = self.kevel_path(&d.path);
        let message = if d.path == "placement" && self.origin.placement_from_div {
            format!(
                "{} (the divName names the aftercart placement unless properties.placement does)",
                d.message
            )
        } else {
            d.message
        };
        Detail::new(path, message)
    }

    /// The Kevel path of a problem aftercart's validation found at `path`.
    pub fn kevel_path(&self, path: &str) -> String {
        let o = &self.origin;
        let here = index("placements", o.index);
        let properties = join(&here, "properties");
        match path {
            "" => here,
            "placement" if o.placement_from_div => join(&here, "divName"),
            "slots" => join(&here, "count"),
            "customer.ids.customer_id" if o.customer_id_from_user => "user.key".into(),
            "customer.ids.device_id" if o.device_id_from_request => "deviceID".into(),
            p if p == "keywords" || p.starts_with("keywords[") => p.into(),
            p => join(&properties, p),
        }
    }
}

/// The whole request, planned: the user key it named, and its placements.
#[derive(Debug)]
pub struct Plan {
    pub user_key: Option<String>,
    /// `consent.gdpr` was `false`: the site says this person did not consent.
    pub gdpr_refused: bool,
    pub placements: Vec<Planned>,
}

/// Plans one decision per placement; `fresh_transaction` names transactions for
/// placements that give none. Returns the plan and every problem found at Kevel's
/// level, with Kevel's paths; the plan is only to be decided when there are none
/// (its requests can still be checked, to report their problems too).
pub fn plan(
    req: KevelRequest,
    max_slots: u8,
    mut fresh_transaction: impl FnMut() -> String,
) -> (Plan, Vec<Detail>) {
    let mut problems = Vec::new();
    let mut bad = |path: String, message: String| problems.push(Detail::new(path, message));
    let placements = match req.placements {
        None => {
            bad("placements".into(), "is required".into());
            Vec::new()
        }
        Some(p) if p.is_empty() => {
            bad(
                "placements".into(),
                "must list at least one placement".into(),
            );
            p
        }
        Some(p) if p.len() > usize::from(max_slots) => {
            bad(
                "placements".into(),
                format!("must list at most {max_slots} placements"),
            );
            Vec::new()
        }
        Some(p) => p,
    };
    let user_key = req.user.and_then(|u| u.key);
    let gdpr = req.consent.and_then(|c| c.gdpr);
    let keywords = req.keywords.unwrap_or_default();

    let mut planned: Vec<Planned> = Vec::with_capacity(placements.len());
    for (i, p) in placements.into_iter().enumerate() {
        let here = index("placements", i);
        let div_name = match p.div_name {
            Some(d) if d.is_empty() => {
                bad(join(&here, "divName"), "must not be empty".into());
                d
            }
            Some(d) => d,
            // What Kevel's SDKs fill in.
            None => format!("div{i}"),
        };
        if let Some(j) = planned.iter().position(|q| q.div_name == div_name) {
            bad(
                join(&here, "divName"),
                format!("repeats placements[{j}].divName: each placement needs its own"),
            );
        }
        let slots = match p.count {
            None => 1,
            Some(n) if (1..=i64::from(max_slots)).contains(&n) => n as u8,
            Some(_) => {
                bad(
                    join(&here, "count"),
                    format!("must be an integer from 1 to {max_slots}"),
                );
                1
            }
        };
        let props = p.properties.unwrap_or_default();
        let placement_from_div = props.placement.is_none();
        let placement = props.placement.unwrap_or_else(|| div_name.clone());

        let mut transaction = props.transaction.unwrap_or_default();
        let given_transaction = transaction.id.is_some();
        if !given_transaction {
            transaction.id = Some(fresh_transaction());
        }
        if given_transaction
            && let Some(j) = planned.iter().position(|q| {
                q.request.placement.as_deref() == Some(placement.as_str())
                    && q.request.transaction.as_ref().and_then(|t| t.id.as_deref())
                        == transaction.id.as_deref()
            })
        {
            bad(
                join(&here, "properties.transaction.id"),
                format!(
                    "placements[{j}] has the same placement and transaction, which is one \
                     decision; use count for more slots"
                ),
            );
        }

        let mut customer = props.customer.unwrap_or_default();
        let ids = customer.ids.get_or_insert_with(Ids::default);
        let mut customer_id_from_user = false;
        if let Some(key) = &user_key {
            match &ids.customer_id {
                Some(given) if given != key => bad(
                    join(&here, "properties.customer.ids.customer_id"),
                    "differs from user.key, which is the same identifier".into(),
                ),
                Some(_) => {}
                None => {
                    ids.customer_id = Some(key.clone());
                    customer_id_from_user = true;
                }
            }
        }
        let mut device_id_from_request = false;
        if let (Some(device), None) = (&req.device_id, &ids.device_id) {
            ids.device_id = Some(device.clone());
            device_id_from_request = true;
        }

        let mut consent = props.consent.unwrap_or_default();
        if let Some(g) = gdpr {
            consent.personalization = consent.personalization.or(Some(g));
            consent.measurement = consent.measurement.or(Some(g));
        }

        planned.push(Planned {
            div_name,
            multi: p.count.is_some_and(|n| n > 1),
            request: DecisionRequest {
                placement: Some(placement),
                channel: Some(props.channel.unwrap_or_else(|| "online".into())),
                slots: Some(i64::from(slots)),
                transaction: Some(transaction),
                customer: Some(customer),
                context: props.context,
                consent: Some(consent),
                keywords: keywords.clone(),
                ..DecisionRequest::default()
            },
            origin: Origin {
                index: i,
                placement_from_div,
                customer_id_from_user,
                device_id_from_request,
            },
        });
    }
    let plan = Plan {
        user_key,
        gdpr_refused: gdpr == Some(false),
        placements: planned,
    };
    (plan, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_of(v: serde_json::Value) -> Result<Plan, Vec<Detail>> {
        let req: KevelRequest = serde_json::from_value(v).unwrap();
        let mut n = 0;
        let (plan, problems) = plan(req, 10, || {
            n += 1;
            format!("tx-{n}")
        });
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(problems)
        }
    }

    fn paths(r: Result<Plan, Vec<Detail>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|d| d.path).collect()
    }

    #[test]
    fn defaults_follow_kevel_and_the_sdks() {
        let plan = plan_of(json!({
            "placements": [{"adTypes": [5], "zoneIds": [1], "siteId": 7}, {"divName": "top", "count": 3}],
            "user": {"key": "u-1"}, "keywords": ["electronics"], "deviceID": "d-9",
            "enableBotFiltering": true, "url": "https://shop.example/thanks"
        }))
        .unwrap();
        assert_eq!(plan.user_key.as_deref(), Some("u-1"));
        let [a, b] = plan.placements.as_slice() else {
            panic!("two placements")
        };
        assert_eq!(a.div_name, "div0");
        assert!(!a.multi);
        assert_eq!(a.request.placement.as_deref(), Some("div0"));
        assert_eq!(a.request.channel.as_deref(), Some("online"));
        assert_eq!(a.request.slots, Some(1));
        let tx = |p: &Planned| p.request.transaction.as_ref().unwrap().id.clone().unwrap();
        assert_eq!((tx(a), tx(b)), ("tx-1".to_string(), "tx-2".to_string()));
        let ids = a.request.customer.as_ref().unwrap().ids.as_ref().unwrap();
        assert_eq!(ids.customer_id.as_deref(), Some("u-1"));
        assert_eq!(ids.device_id.as_deref(), Some("d-9"));
        assert_eq!(a.request.keywords, vec!["electronics".to_string()]);
        assert!(b.multi);
        assert_eq!(b.request.slots, Some(3));
        assert_eq!(b.kevel_path("placement"), "placements[1].divName");
        assert_eq!(b.kevel_path("slots"), "placements[1].count");
        assert_eq!(a.kevel_path("customer.ids.customer_id"), "user.key");
        assert_eq!(a.kevel_path("keywords[0]"), "keywords[0]");
        assert_eq!(
            a.kevel_path("transaction.items[0].price"),
            "placements[0].properties.transaction.items[0].price"
        );
    }

    #[test]
    fn gdpr_fills_what_properties_consent_leaves_unsaid() {
        let plan = plan_of(json!({
            "placements": [{"properties": {"consent": {"measurement": true}}}],
            "consent": {"gdpr": false}
        }))
        .unwrap();
        let c = plan.placements[0].request.consent.unwrap();
        assert_eq!(
            (c.personalization, c.measurement),
            (Some(false), Some(true))
        );
        assert!(plan.gdpr_refused);
    }

    #[test]
    fn every_problem_is_named_with_its_kevel_path() {
        let r = plan_of(json!({
            "placements": [
                {"divName": "a", "count": 0, "properties": {"transaction": {"id": "T"}}},
                {"divName": "a", "count": 11},
                {"divName": "b", "properties": {"placement": "a", "transaction": {"id": "T"}}},
                {"divName": "", "properties": {"customer": {"ids": {"customer_id": "x"}}}}
            ],
            "user": {"key": "y"}
        }));
        assert_eq!(
            paths(r),
            [
                "placements[0].count",
                "placements[1].divName",
                "placements[1].count",
                "placements[2].properties.transaction.id",
                "placements[3].divName",
                "placements[3].properties.customer.ids.customer_id",
            ]
        );
        assert_eq!(paths(plan_of(json!({}))), ["placements"]);
        assert_eq!(paths(plan_of(json!({"placements": []}))), ["placements"]);
        let eleven: Vec<_> = (0..11)
            .map(|i| json!({"divName": format!("d{i}")}))
            .collect();
        assert_eq!(
            paths(plan_of(json!({"placements": eleven}))),
            ["placements"]
        );
    }
}
