//! The simulation's ground truth: what was sent, the true effect per campaign, and the
//! identity resolution a perfect resolver would reach from the identifiers the visits
//! brought together.

use super::Options;
use super::shopper::{Channel, Target};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// What the run did and what is true about it.
#[derive(Clone, Debug, Serialize)]
pub struct Truth {
    pub seed: u64,
    pub shoppers: usize,
    /// Decision requests sent (one per visit but the last).
    pub decisions: u64,
    pub offers: u64,
    /// Impressions and clicks the server counted (204 and 302).
    pub impressions: u64,
    pub clicks: u64,
    /// Orders posted to `/v1/conversions` (every visit, the last included).
    pub orders: u64,
    /// Products bought inside the ad unit.
    pub in_unit_purchases: u64,
    /// In-unit purchases refused as sold out.
    pub sold_out: u64,
    /// Purchases the report should count: orders accepted plus in-unit purchases.
    pub purchases: u64,
    /// Those whose identifiers connect, through the identifiers seen together in the
    /// run, to identifiers a decision was made for.
    pub resolved_purchases: u64,
    pub identity_resolution_rate: Option<f64>,
    /// Unexpected answers by request and status (none in a healthy run).
    pub failures: BTreeMap<String, u64>,
    /// The first few unexpected answers, for diagnosis.
    pub failure_examples: Vec<String>,
    pub campaigns: Vec<CampaignTruth>,
}

/// One campaign's true effect and what happened at the last purchase.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignTruth {
    pub campaign_id: String,
    pub base_rate: f64,
    /// The configured true lift: offered shoppers buy with `base_rate × (1 + lift)`.
    pub true_lift: f64,
    /// Shoppers an earlier decision offered the campaign, and those of them who bought.
    pub offered: u64,
    pub offered_bought: u64,
    /// Shoppers never offered it (held out, not eligible, or outbid), and buyers.
    pub not_offered: u64,
    pub not_offered_bought: u64,
    /// Of `offered`, those offered in a decision with identifiers (a profile the log
    /// can count them by), and those of them whose purchase carried identifiers: what
    /// a report's exposed group and its conversions should find.
    pub offered_known: u64,
    pub offered_known_bought_known: u64,
    /// Buyers of the campaign's product by the channel of the last purchase.
    pub bought_online: u64,
    pub bought_app: u64,
    pub bought_in_store: u64,
}

/// What happened to one identifier set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Decision,
    Purchase,
}

/// One shopper's identifier graph: a union-find over the identifiers each event
/// carried together, as the server links them.
#[derive(Default)]
pub struct Graph {
    parent: HashMap<String, String>,
    /// Each event by its first identifier (`None`: it carried none).
    events: Vec<(Option<String>, Event)>,
    in_unit: u64,
}

impl Graph {
    fn find(&mut self, id: &str) -> String {
        let mut root = id.to_string();
        while let Some(p) = self.parent.get(&root).filter(|p| **p != root) {
            root = p.clone();
        }
        root
    }

    /// An event with these identifiers (sorted; none for a cash purchase).
    pub fn event(&mut self, ids: Vec<String>, event: Event) {
        let Some(first) = ids.first().cloned() else {
            self.events.push((None, event));
            return;
        };
        for id in &ids {
            self.parent.entry(id.clone()).or_insert_with(|| id.clone());
        }
        for id in &ids[1..] {
            let (a, b) = (self.find(&first), self.find(id));
            if a != b {
                self.parent.insert(b, a);
            }
        }
        self.events.push((Some(first), event));
    }

    /// A product bought in the unit: its buyer is the decision's own profile.
    pub fn in_unit_purchase(&mut self) {
        self.in_unit += 1;
    }

    /// (purchases, resolved purchases) once every event is in.
    fn resolution(&mut self) -> (u64, u64) {
        let events = std::mem::take(&mut self.events);
        let decided: Vec<String> = (events.iter())
            .filter(|(_, e)| *e == Event::Decision)
            .filter_map(|(id, _)| id.as_deref().map(|id| self.find(id)))
            .collect();
        let (mut purchases, mut resolved) = (self.in_unit, self.in_unit);
        for (id, e) in &events {
            if *e == Event::Purchase {
                purchases += 1;
                if let Some(id) = id {
                    let root = self.find(id);
                    resolved += u64::from(decided.contains(&root));
                }
            }
        }
        (purchases, resolved)
    }
}

#[derive(Clone, Copy, Default)]
struct Outcomes {
    offered: u64,
    offered_bought: u64,
    offered_known: u64,
    offered_known_bought_known: u64,
    not_offered: u64,
    not_offered_bought: u64,
    by_channel: [u64; 3],
}

/// A worker's running counts, added up at the end.
pub struct Tally {
    pub decisions: u64,
    pub offers: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub orders: u64,
    pub in_unit_purchases: u64,
    pub sold_out: u64,
    purchases: u64,
    resolved: u64,
    failures: BTreeMap<String, u64>,
    examples: Vec<String>,
    outcomes: Vec<Outcomes>,
}

const EXAMPLES: usize = 5;

impl Tally {
    pub fn new(targets: &[Target]) -> Tally {
        Tally {
            decisions: 0,
            offers: 0,
            impressions: 0,
            clicks: 0,
            orders: 0,
            in_unit_purchases: 0,
            sold_out: 0,
            purchases: 0,
            resolved: 0,
            failures: BTreeMap::new(),
            examples: Vec::new(),
            outcomes: vec![Outcomes::default(); targets.len()],
        }
    }

    pub fn failure(&mut self, what: &str, status: u16, body: &Value) {
        *self.failures.entry(format!("{what} {status}")).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("{what} answered {status}: {body}"));
        }
    }

    /// The last purchase's outcome for one campaign: whether it was offered (at all,
    /// and to a profile), and whether it was bought (at all, and with identifiers).
    pub fn outcome(
        &mut self,
        target: usize,
        (offered, offered_known): (bool, bool),
        (bought, bought_known): (bool, bool),
        channel: Channel,
    ) {
        let o = &mut self.outcomes[target];
        if offered_known {
            o.offered_known += 1;
            o.offered_known_bought_known += u64::from(bought_known);
        }
        if offered {
            o.offered += 1;
            o.offered_bought += u64::from(bought);
        } else {
            o.not_offered += 1;
            o.not_offered_bought += u64::from(bought);
        }
        if bought {
            let i = Channel::ALL.iter().position(|c| *c == channel).unwrap_or(0);
            o.by_channel[i] += 1;
        }
    }

    /// Adds a finished shopper's purchases and how many of them resolve.
    pub fn identity(&mut self, mut graph: Graph) {
        let (purchases, resolved) = graph.resolution();
        self.purchases += purchases;
        self.resolved += resolved;
    }

    pub fn add(&mut self, other: Tally) {
        self.decisions += other.decisions;
        self.offers += other.offers;
        self.impressions += other.impressions;
        self.clicks += other.clicks;
        self.orders += other.orders;
        self.in_unit_purchases += other.in_unit_purchases;
        self.sold_out += other.sold_out;
        self.purchases += other.purchases;
        self.resolved += other.resolved;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            mine.offered += theirs.offered;
            mine.offered_bought += theirs.offered_bought;
            mine.offered_known += theirs.offered_known;
            mine.offered_known_bought_known += theirs.offered_known_bought_known;
            mine.not_offered += theirs.not_offered;
            mine.not_offered_bought += theirs.not_offered_bought;
            for (a, b) in mine.by_channel.iter_mut().zip(theirs.by_channel) {
                *a += b;
            }
        }
    }

    pub fn truth(self, options: &Options, targets: &[Target]) -> Truth {
        Truth {
            seed: options.seed,
            shoppers: options.shoppers,
            decisions: self.decisions,
            offers: self.offers,
            impressions: self.impressions,
            clicks: self.clicks,
            orders: self.orders,
            in_unit_purchases: self.in_unit_purchases,
            sold_out: self.sold_out,
            purchases: self.purchases,
            resolved_purchases: self.resolved,
            identity_resolution_rate: (self.purchases > 0)
                .then(|| self.resolved as f64 / self.purchases as f64),
            failures: self.failures,
            failure_examples: self.examples,
            campaigns: targets
                .iter()
                .zip(self.outcomes)
                .map(|(t, o)| CampaignTruth {
                    campaign_id: t.id.clone(),
                    base_rate: t.base_rate,
                    true_lift: t.lift,
                    offered: o.offered,
                    offered_bought: o.offered_bought,
                    offered_known: o.offered_known,
                    offered_known_bought_known: o.offered_known_bought_known,
                    not_offered: o.not_offered,
                    not_offered_bought: o.not_offered_bought,
                    bought_online: o.by_channel[0],
                    bought_app: o.by_channel[1],
                    bought_in_store: o.by_channel[2],
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_store_purchase_resolves_only_once_its_card_met_a_decided_identifier() {
        let mut g = Graph::default();
        g.event(ids(&["email=a"]), Event::Decision);
        g.event(ids(&["payment_token=t"]), Event::Purchase);
        assert_eq!(
            g.resolution(),
            (1, 0),
            "the card was never seen with the e-mail"
        );

        let mut g = Graph::default();
        g.event(ids(&["email=a"]), Event::Decision);
        g.event(ids(&["payment_token=t"]), Event::Purchase);
        // Later, an online order paid with the same card links them.
        g.event(ids(&["email=a", "payment_token=t"]), Event::Purchase);
        g.in_unit_purchase();
        // Cash: a purchase by nobody.
        g.event(vec![], Event::Purchase);
        g.event(vec![], Event::Decision);
        assert_eq!(g.resolution(), (4, 3));
    }
}
