//! `aftercart simulate`: a population of shoppers driven through a running server's
//! real HTTP API, with a known true effect per campaign. It is the demo data for a new
//! user and the oracle for the report's tests.
//!
//! Each shopper makes a few visits on the web, in the app and in stores. A visit is an
//! order (posted to `/v1/conversions`, as the order system or POS would) and a decision
//! for its confirmation page or receipt; offers are viewed after a render delay (most
//! of them), some are clicked, and a few products are bought inside the unit. A last
//! visit is a purchase only, with no ad: for each campaign the shopper buys its product
//! with the campaign's base rate, or, when an earlier decision offered the campaign,
//! with `base × (1 + lift)`. That is the true lift a holdout measures: held-out
//! shoppers are never offered the campaign, so they buy at the base rate.
//!
//! The run returns its ground truth ([`Truth`]): what was sent, who was offered what
//! and who bought, and the identity resolution a perfect resolver would reach from the
//! identifiers the visits brought together (a union-find over every event's
//! identifiers, as the server links them).

mod client;
pub mod shopper;
mod truth;

pub use client::{Client, ClientError};
pub use truth::{CampaignTruth, Truth};

use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shopper::{Channel, Item, Shopper, Target};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use truth::Tally;

/// Chance an offer is viewed (its impression fires).
const VIEW_RATE: f64 = 0.85;
/// Chance a viewed offer is clicked.
const CLICK_RATE: f64 = 0.06;
/// Chance a viewed product offer with a purchase URL is bought inside the unit.
const BUY_IN_UNIT_RATE: f64 = 0.03;

#[derive(Clone, Debug)]
pub struct Options {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// An admin key: the simulator lists campaigns and posts conversions with it.
    pub key: String,
    pub shoppers: usize,
    /// Mean number of visits with a decision before the last purchase.
    pub visits: u32,
    pub seed: u64,
    /// Chance that a shopper not offered a campaign buys its product anyway.
    pub base_rate: f64,
    /// The true lift of every campaign not named in `lifts`.
    pub lift: f64,
    /// True lifts per campaign id.
    pub lifts: BTreeMap<String, f64>,
    /// Wait this long after a decision before firing its impressions, as a page renders
    /// (the server logs faster ones as invalid).
    pub render_ms: u64,
    /// Shoppers simulated at once.
    pub concurrency: usize,
    /// The deployment's currency.
    pub currency: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            server: "http://127.0.0.1:8080".into(),
            key: String::new(),
            shoppers: 2_000,
            visits: 3,
            seed: 1,
            base_rate: 0.10,
            lift: 0.30,
            lifts: BTreeMap::new(),
            render_ms: 150,
            concurrency: 16,
            currency: "USD".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("listing campaigns answered {status}: {body}")]
    Campaigns { status: u16, body: Value },
    #[error("the server has no active campaign to simulate against")]
    NoCampaigns,
    #[error("invalid options: {0}")]
    Options(String),
}

/// Runs the simulation against a server; `progress` is called with the shoppers done.
pub async fn run(
    options: &Options,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Truth, SimulateError> {
    if !(0.0..=1.0).contains(&options.base_rate) {
        return Err(SimulateError::Options(
            "--base-rate must be from 0 to 1".into(),
        ));
    }
    if options.lift < -1.0 || options.lifts.values().any(|l| *l < -1.0) {
        return Err(SimulateError::Options(
            "a lift cannot be below -1 (-100%)".into(),
        ));
    }
    let client = Client::new(&options.server, &options.key);
    let (targets, categories) = discover(&client, options).await?;
    let world = Arc::new(World {
        client,
        options: options.clone(),
        targets,
        categories,
    });
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (world, next, done) = (world.clone(), next.clone(), done.clone());
        workers.spawn(async move {
            let mut tally = Tally::new(&world.targets);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= world.options.shoppers {
                    return Ok::<_, ClientError>(tally);
                }
                world.shop(n, &mut tally).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut total = Tally::new(&world.targets);
    let mut last = 0;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(result) => {
                    let tally = result.map_err(|e| ClientError::Transport {
                        url: options.server.clone(),
                        reason: format!("a simulated shopper failed: {e}"),
                    })??;
                    total.add(tally);
                }
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let now = done.load(Ordering::Relaxed);
        if now != last {
            progress(now);
            last = now;
        }
    }
    progress(done.load(Ordering::Relaxed));
    Ok(total.truth(options, &world.targets))
}

/// The ground truth as a few lines for a terminal.
pub fn summary(t: &Truth) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    let _ = writeln!(
        out,
        "simulated {} shoppers (seed {}): {} decisions, {} offers, {} impressions, {} clicks, \
         {} orders, {} bought in the unit",
        t.shoppers,
        t.seed,
        t.decisions,
        t.offers,
        t.impressions,
        t.clicks,
        t.orders,
        t.in_unit_purchases
    );
    let _ = writeln!(
        out,
        "identity resolution (ground truth): {} of {} purchases ({})",
        t.resolved_purchases,
        t.purchases,
        pct(t.identity_resolution_rate)
    );
    let _ = writeln!(
        out,
        "{:<32} {:>9} {:>10} {:>10} {:>12} {:>10}",
        "campaign", "true lift", "offered", "bought", "not offered", "bought"
    );
    for c in &t.campaigns {
        let _ = writeln!(
            out,
            "{:<32} {:>9} {:>10} {:>10} {:>12} {:>10}",
            c.campaign_id,
            format!("{:+.0}%", c.true_lift * 100.0),
            c.offered,
            c.offered_bought,
            c.not_offered,
            c.not_offered_bought
        );
    }
    out
}

/// The active campaigns and what their converting purchase looks like; and the
/// categories ordinary baskets are drawn from.
async fn discover(
    client: &Client,
    options: &Options,
) -> Result<(Vec<Target>, Vec<String>), SimulateError> {
    let mut docs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/campaigns?limit=500&after={a}"),
            None => "/v1/campaigns?limit=500".to_string(),
        };
        let answer = client.send(Method::GET, &path, true, None).await?;
        if answer.status != 200 {
            return Err(SimulateError::Campaigns {
                status: answer.status,
                body: answer.body,
            });
        }
        let page = answer.body;
        docs.extend(page["campaigns"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| d["status"] == "active")
        .collect();
    if docs.is_empty() {
        return Err(SimulateError::NoCampaigns);
    }
    let strings = |v: &Value| -> Vec<String> {
        (v.as_array().into_iter().flatten())
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut targeted = Vec::new();
    let mut converting = Vec::new();
    let mut targets = Vec::new();
    for d in &docs {
        let id = d["id"].as_str().unwrap_or_default().to_string();
        targeted.extend(strings(&d["targeting"]["basket"]["any_categories"]));
        let rule = &d["conversion"];
        let (skus, categories, brands) = (
            strings(&rule["skus"]),
            strings(&rule["categories"]),
            strings(&rule["brands"]),
        );
        converting.extend(categories.iter().cloned());
        let product_price = (d["creatives"].as_array().into_iter().flatten())
            .find_map(|c| c["product"]["price"].as_f64());
        let item = Item {
            sku: skus.first().cloned().unwrap_or_else(|| format!("SIM-{id}")),
            category: categories
                .first()
                .cloned()
                .unwrap_or_else(|| "sim/promoted".into()),
            brand: brands
                .first()
                .cloned()
                .unwrap_or_else(|| "Sim Promoted".into()),
            price: product_price.unwrap_or(49.99),
        };
        let lift = options.lifts.get(&id).copied().unwrap_or(options.lift);
        targets.push(Target {
            id,
            item,
            base_rate: options.base_rate,
            lift,
        });
    }
    if let Some(unknown) = (options.lifts.keys()).find(|id| !targets.iter().any(|t| &t.id == *id)) {
        return Err(SimulateError::Options(format!(
            "--lift-for names {unknown:?}, which is not an active campaign"
        )));
    }
    let categories = shopper::basket_categories(&targeted, &converting);
    Ok((targets, categories))
}

struct World {
    client: Client,
    options: Options,
    targets: Vec<Target>,
    categories: Vec<String>,
}

impl World {
    /// One shopper's visits, from first to last purchase.
    async fn shop(&self, n: usize, tally: &mut Tally) -> Result<(), ClientError> {
        let o = &self.options;
        let mut rng =
            StdRng::seed_from_u64(o.seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let shopper = Shopper::new(n, o.seed, &mut rng);
        let mut graph = truth::Graph::default();
        let mut offered: HashSet<usize> = HashSet::new();
        // Offered in a decision that carried identifiers: to a profile.
        let mut offered_known: HashSet<usize> = HashSet::new();
        let visits = rng.random_range(1..=(2 * o.visits.max(1) - 1));
        for v in 0..visits {
            let channel = shopper.channel(&mut rng);
            let cash = shopper.pays_cash(channel, &mut rng);
            let items = shopper::basket(&mut rng, &self.categories);
            let order = format!("SIM-{:x}-{n}-{v}", o.seed);
            self.order(&shopper, (channel, cash), &order, &items, &mut graph, tally)
                .await?;
            let mut request = json!({
                "placement": channel.placement(),
                "channel": channel.name(),
                "slots": 2,
                "transaction": {"id": order, "total": shopper::total(&items),
                    "currency": o.currency, "items": items.iter().map(Item::json).collect::<Vec<_>>()},
                "customer": shopper.customer(channel, v == 0, cash),
                "context": shopper.context(channel),
            });
            if channel == Channel::InStore {
                request["transaction"]["payment_method"] = Value::from("card");
            }
            let answer = self
                .client
                .send(Method::POST, "/v1/decisions", false, Some(&request))
                .await?;
            tally.decisions += 1;
            if answer.status != 200 {
                tally.failure("decision", answer.status, &answer.body);
                continue;
            }
            graph.event(
                shopper.id_list(channel, false, cash),
                truth::Event::Decision,
            );
            let offers = answer.body["offers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !offers.is_empty() && o.render_ms > 0 {
                tokio::time::sleep(Duration::from_millis(o.render_ms)).await;
            }
            for offer in &offers {
                tally.offers += 1;
                let campaign = offer["campaign_id"].as_str().unwrap_or_default();
                if let Some(t) = self.targets.iter().position(|t| t.id == campaign) {
                    offered.insert(t);
                    if !cash {
                        offered_known.insert(t);
                    }
                }
                if !rng.random_bool(VIEW_RATE) {
                    continue;
                }
                self.track(offer, "impression", tally).await?;
                if rng.random_bool(CLICK_RATE) {
                    self.track(offer, "click", tally).await?;
                }
                if offer["tracking"]["purchase"].is_string() && rng.random_bool(BUY_IN_UNIT_RATE) {
                    self.buy_in_unit(offer, tally, &mut graph).await?;
                }
            }
        }
        // The last visit: a purchase only, where the true effect shows.
        let channel = match rng.random::<f64>() {
            x if x < 0.45 => Channel::InStore,
            x if x < 0.8 || shopper.device.is_none() => Channel::Online,
            _ => Channel::App,
        };
        let cash = shopper.pays_cash(channel, &mut rng);
        let mut items = shopper::basket(&mut rng, &self.categories);
        for (t, target) in self.targets.iter().enumerate() {
            let was_offered = offered.contains(&t);
            let rate = if was_offered {
                (target.base_rate * (1.0 + target.lift)).clamp(0.0, 1.0)
            } else {
                target.base_rate
            };
            let bought = rng.random_bool(rate);
            tally.outcome(
                t,
                (was_offered, offered_known.contains(&t)),
                (bought, bought && !cash),
                channel,
            );
            if bought && !items.iter().any(|i| i == &target.item) {
                items.push(target.item.clone());
            }
        }
        let order = format!("SIM-{:x}-{n}-last", o.seed);
        self.order(&shopper, (channel, cash), &order, &items, &mut graph, tally)
            .await?;
        tally.identity(graph);
        Ok(())
    }

    /// Posts an order as the order system or POS would.
    async fn order(
        &self,
        shopper: &Shopper,
        (channel, cash): (Channel, bool),
        order: &str,
        items: &[Item],
        graph: &mut truth::Graph,
        tally: &mut Tally,
    ) -> Result<(), ClientError> {
        let mut body = json!({
            "order_id": order, "type": "purchase", "channel": channel.name(),
            "total": shopper::total(items), "currency": self.options.currency,
            "customer": {"ids": shopper.ids(channel, true, cash)},
            "items": items.iter().map(Item::json).collect::<Vec<_>>(),
        });
        if channel == Channel::InStore {
            body["store_id"] = Value::from(shopper.store.as_str());
        }
        let answer = self
            .client
            .send(Method::POST, "/v1/conversions", true, Some(&body))
            .await?;
        tally.orders += 1;
        if answer.status == 202 {
            graph.event(shopper.id_list(channel, true, cash), truth::Event::Purchase);
        } else {
            tally.failure("conversion", answer.status, &answer.body);
        }
        Ok(())
    }

    async fn track(
        &self,
        offer: &Value,
        event: &str,
        tally: &mut Tally,
    ) -> Result<(), ClientError> {
        let Some(url) = offer["tracking"][event].as_str() else {
            return Ok(());
        };
        let answer = self.client.send(Method::GET, url, false, None).await?;
        match (event, answer.status) {
            ("impression", 204) => tally.impressions += 1,
            ("click", 302) => tally.clicks += 1,
            (_, status) => tally.failure(event, status, &answer.body),
        }
        Ok(())
    }

    async fn buy_in_unit(
        &self,
        offer: &Value,
        tally: &mut Tally,
        graph: &mut truth::Graph,
    ) -> Result<(), ClientError> {
        let url = offer["tracking"]["purchase"].as_str().unwrap_or_default();
        let answer = self
            .client
            .send(Method::POST, url, false, Some(&json!({"quantity": 1})))
            .await?;
        match answer.status {
            201 => {
                tally.in_unit_purchases += 1;
                // Bought by the decision's own profile, which has a decision.
                graph.in_unit_purchase();
            }
            // Sold out meanwhile: what a real shopper would see too.
            409 => tally.sold_out += 1,
            status => tally.failure("purchase", status, &answer.body),
        }
        Ok(())
    }
}
