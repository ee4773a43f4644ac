//! The simulated population: who a shopper is, which identifiers each channel shows,
//! what they buy, and how an offer changes what they buy later.
//!
//! Each shopper has an e-mail address and a payment card; many have the app (a device
//! id) and a loyalty card. The web shows the e-mail; the app the device, the e-mail and
//! the loyalty card; the store the loyalty card (for members) and the payment card. So a
//! shopper's identifiers are linked only as the visits bring them together, as in life.
//! A member who sees an offer in the app and buys in a store is one profile; a
//! non-member's in-store card is linked once the same card paid online; a non-member
//! paying cash in a store is nobody, and that purchase stays unresolved.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// A campaign as the simulator needs it: what the purchase it hopes for looks like.
#[derive(Clone, Debug)]
pub struct Target {
    pub id: String,
    /// An item matching the campaign's `conversion` rule.
    pub item: Item,
    /// The chance that a shopper not offered the campaign buys it anyway.
    pub base_rate: f64,
    /// The true effect: offered shoppers buy with `base_rate × (1 + lift)`.
    pub lift: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub sku: String,
    pub category: String,
    pub brand: String,
    pub price: f64,
}

impl Item {
    pub fn json(&self) -> Value {
        json!({"sku": self.sku, "category": self.category, "brand": self.brand,
            "price": self.price, "quantity": 1})
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Online,
    App,
    InStore,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Online, Channel::App, Channel::InStore];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::App => "app",
            Channel::InStore => "in_store",
        }
    }

    pub fn placement(self) -> &'static str {
        match self {
            Channel::InStore => "pos_receipt",
            _ => "order_confirmation",
        }
    }
}

const REGIONS: [&str; 6] = ["CA", "NY", "TX", "WA", "IL", "FL"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
/// Brands no campaign converts on: the rest of a basket.
const BRANDS: [&str; 8] = [
    "Casa Dorada",
    "Fizzwell",
    "Sunfield",
    "Green Meadow",
    "BrightHome",
    "Silkroot",
    "Oakline",
    "Novaphone",
];

/// One shopper, generated from their number and the run's seed.
#[derive(Clone, Debug)]
pub struct Shopper {
    pub n: usize,
    pub email: String,
    pub device: Option<String>,
    pub loyalty: Option<(String, &'static str)>,
    pub card: String,
    pub region: &'static str,
    pub store: String,
}

impl Shopper {
    pub fn new(n: usize, seed: u64, rng: &mut StdRng) -> Shopper {
        let tag = format!("{seed:x}-{n}");
        Shopper {
            n,
            email: format!("shopper.{tag}@example.com"),
            device: rng
                .random_bool(0.65)
                .then(|| format!("dev-{tag}-{:08x}", rng.random::<u32>())),
            loyalty: rng
                .random_bool(0.55)
                .then(|| (format!("L-{tag}"), TIERS[rng.random_range(0..TIERS.len())])),
            card: format!("tok_{tag}_{:06x}", rng.random::<u32>() & 0xff_ffff),
            region: REGIONS[rng.random_range(0..REGIONS.len())],
            store: format!("store-{:03}", rng.random_range(1..=40)),
        }
    }

    /// Where the next visit happens.
    pub fn channel(&self, rng: &mut StdRng) -> Channel {
        let x: f64 = rng.random();
        match self.device {
            Some(_) if x < 0.35 => Channel::App,
            Some(_) if x < 0.75 => Channel::Online,
            Some(_) => Channel::InStore,
            None if x < 0.6 => Channel::Online,
            None => Channel::InStore,
        }
    }

    /// Whether an in-store visit is paid in cash by a non-member: no identifier at all.
    pub fn pays_cash(&self, channel: Channel, rng: &mut StdRng) -> bool {
        channel == Channel::InStore && self.loyalty.is_none() && rng.random_bool(0.25)
    }

    /// The identifiers a channel shows. `order` adds what an order system knows beyond
    /// the confirmation page (the payment card online and in the app). Cash shows none.
    pub fn ids(&self, channel: Channel, order: bool, cash: bool) -> Value {
        let mut ids = serde_json::Map::new();
        if cash {
            return Value::Object(ids);
        }
        let mut put = |k: &str, v: &str| {
            ids.insert(k.to_string(), Value::from(v));
        };
        match channel {
            Channel::Online => put("email", &self.email),
            Channel::App => {
                put("email", &self.email);
                if let Some(d) = &self.device {
                    put("device_id", d);
                }
                if let Some((l, _)) = &self.loyalty {
                    put("loyalty_id", l);
                }
            }
            Channel::InStore => {
                if let Some((l, _)) = &self.loyalty {
                    put("loyalty_id", l);
                }
                put("payment_token", &self.card);
            }
        }
        if order && channel != Channel::InStore {
            put("payment_token", &self.card);
        }
        Value::Object(ids)
    }

    /// The same identifiers as (kind, value) pairs, for the ground truth's graph.
    pub fn id_list(&self, channel: Channel, order: bool, cash: bool) -> Vec<String> {
        let ids = self.ids(channel, order, cash);
        let mut out: Vec<String> = (ids.as_object().into_iter().flatten())
            .map(|(k, v)| {
                // A raw e-mail is hashed at the door into email_sha256: the same identifier.
                let kind = if k == "email" { "email_sha256" } else { k };
                format!("{kind}={}", v.as_str().unwrap_or_default())
            })
            .collect();
        out.sort();
        out
    }

    pub fn customer(&self, channel: Channel, first_visit: bool, cash: bool) -> Value {
        let mut c = json!({"ids": self.ids(channel, false, cash), "new_customer": first_visit});
        if let Some((_, tier)) = &self.loyalty {
            c["loyalty_tier"] = Value::from(*tier);
        }
        c
    }

    pub fn context(&self, channel: Channel) -> Value {
        let mut c = json!({"country": "US", "region": self.region, "locale": "en-US"});
        if channel == Channel::InStore {
            c["store_id"] = Value::from(self.store.as_str());
        }
        c
    }
}

/// Categories baskets are drawn from: those the campaigns target, so decisions have
/// something to match, minus any a conversion rule names, so that only the simulated
/// effect (and the base rate) buys a campaign's product.
pub fn basket_categories(targeted: &[String], converting: &[String]) -> Vec<String> {
    let mut out: Vec<String> = targeted
        .iter()
        .chain(
            ["grocery/snacks", "household/cleaning", "apparel/tops"]
                .map(String::from)
                .iter(),
        )
        .map(|c| format!("{c}/sim"))
        .filter(|c| {
            !converting
                .iter()
                .any(|r| c == r || c.starts_with(&format!("{r}/")))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An ordinary basket of one to four items.
pub fn basket(rng: &mut StdRng, categories: &[String]) -> Vec<Item> {
    (0..rng.random_range(1..=4))
        .map(|_| Item {
            sku: format!("SIM-{:05}", rng.random_range(0..20_000)),
            category: categories[rng.random_range(0..categories.len())].clone(),
            brand: BRANDS[rng.random_range(0..BRANDS.len())].to_string(),
            // Cents, so totals add up exactly.
            price: f64::from(rng.random_range(199..=12_999u32)) / 100.0,
        })
        .collect()
}

pub fn total(items: &[Item]) -> f64 {
    (items
        .iter()
        .map(|i| (i.price * 100.0).round() as i64)
        .sum::<i64>()) as f64
        / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn channels_show_the_identifiers_they_would_in_life() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = (0..100)
            .map(|n| Shopper::new(n, 7, &mut rng))
            .find(|s| s.device.is_some() && s.loyalty.is_some())
            .unwrap();
        assert_eq!(
            s.id_list(Channel::Online, false, false),
            [format!("email_sha256={}", s.email)]
        );
        assert!(
            s.id_list(Channel::Online, true, false)
                .iter()
                .any(|i| i.starts_with("payment_token="))
        );
        assert_eq!(s.id_list(Channel::App, false, false).len(), 3);
        assert!(
            s.id_list(Channel::InStore, true, true).is_empty(),
            "cash is nobody"
        );
        let store = s.id_list(Channel::InStore, true, false);
        assert!(store.iter().any(|i| i.starts_with("loyalty_id=")));
        assert!(
            !store.iter().any(|i| i.starts_with("email")),
            "a till knows no e-mail"
        );
    }

    #[test]
    fn baskets_never_carry_a_converting_category() {
        let cats = basket_categories(&["grocery".into(), "pets".into()], &["grocery/sim".into()]);
        assert!(!cats.contains(&"grocery/sim".to_string()));
        assert!(cats.contains(&"pets/sim".to_string()));
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..100 {
            let b = basket(&mut rng, &cats);
            assert!((1..=4).contains(&b.len()));
            assert!(
                b.iter()
                    .all(|i| cats.contains(&i.category) && i.price >= 1.99)
            );
        }
    }
}
