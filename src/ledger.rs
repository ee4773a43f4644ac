//! The ledger: what the exposure log says has happened, kept live in memory.
//!
//! Spend per campaign, and the deduplication keys that make events and conversions
//! count once: an impression or click per decision and slot, a conversion per channel,
//! order id and type. Request handlers update it *before* handing their record to the
//! log, and every update is keyed, so applying a record twice changes nothing. That is
//! what makes checkpoints simple: a checkpoint is the ledger as it is plus the log
//! offset written before it was taken; on start the ledger is loaded and every record
//! from that offset on is applied again, harmlessly for those already counted.

use crate::delivery::profiles::{Group, campaign_hash, item_keys};
use crate::delivery::{CampaignLive, Delivery, Registry};
use crate::exposure::record::{ConversionType, Kind, Record};
use crate::identity::IdHash;
use crate::identity::IdentityHasher;
use crate::identity::graph::ProfileId;
use crate::inventory::Inventory;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Which event of an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    Impression = 0,
    Click = 1,
    Purchase = 2,
}

/// Days of daily spend kept per campaign (today and the days before, for stats).
const DAYS_KEPT: usize = 8;

/// A campaign's spend in micros: in total and per day of the campaign's time zone.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Spend {
    pub total: i64,
    /// (day number since the epoch, micros), newest last.
    pub days: Vec<(i32, i64)>,
}

impl Spend {
    pub fn on_day(&self, day: i32) -> i64 {
        self.days
            .iter()
            .find(|(d, _)| *d == day)
            .map_or(0, |(_, v)| *v)
    }

    fn add(&mut self, day: i32, amount: i64) {
        self.total += amount;
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, v)) => *v += amount,
            None => {
                self.days.push((day, amount));
                self.days.sort_unstable_by_key(|(d, _)| *d);
                if self.days.len() > DAYS_KEPT {
                    self.days.remove(0);
                }
            }
        }
    }
}

pub struct Ledger {
    spend: DashMap<Arc<str>, Spend>,
    /// (decision, slot, event) → when the decision was made (ms), for expiry.
    events: DashMap<(u128, u8, u8), i64>,
    /// Keyed hash of (channel, order id, type) → when the conversion happened (ms).
    conversions: DashMap<u128, i64>,
    /// Keys conversions so that the map cannot be flooded with crafted collisions and
    /// the keys stay the same across restarts.
    hasher: IdentityHasher,
    /// The last logged version of every campaign (the audit trail's state).
    campaigns: DashMap<String, CampaignVersion>,
    /// Stock, whose in-unit sales come from `purchase` records.
    inventory: Arc<Inventory>,
    /// Per-campaign live counters (offers, impressions and clicks per channel), the
    /// identity graph and per-profile memory, which replayed records rebuild.
    delivery: Arc<Delivery>,
}

/// What replaying the log needs to know about the campaigns loaded now.
pub trait Campaigns {
    /// The campaign's day (days since the epoch in its time zone) at `ms`.
    fn day_of(&self, campaign: &str, ms: i64) -> i32;
    /// The campaign's longest frequency-cap window (ms) and holdout share, if loaded.
    fn delivery_of(&self, campaign: &str) -> Option<(i64, f64)>;
}

/// For records that need nothing from the campaigns (campaign changes).
pub struct NoCampaigns;

impl Campaigns for NoCampaigns {
    fn day_of(&self, _: &str, _: i64) -> i32 {
        0
    }
    fn delivery_of(&self, _: &str) -> Option<(i64, f64)> {
        None
    }
}

/// The last logged change of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignVersion {
    pub version: u64,
    /// xxh3 of the logged document (0 for a delete).
    pub digest: u64,
    pub deleted: bool,
}

/// The digest a campaign document is compared by.
pub fn document_digest(document: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(document.as_bytes())
}

/// The on-disk form of a checkpoint.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    v: u8,
    /// Every record before this offset is reflected in the rest.
    offset: u64,
    spend: Vec<(String, Spend)>,
    events: Vec<(u128, u8, u8, i64)>,
    conversions: Vec<(u128, i64)>,
    #[serde(default)]
    campaigns: Vec<(String, CampaignVersion)>,
    /// In-unit sales not yet covered by a stock report: (sku, location, quantity, ms).
    #[serde(default)]
    sales: Vec<(String, String, u32, i64)>,
    /// Per campaign: offers, impressions and clicks per channel.
    #[serde(default)]
    counters: Vec<Counters>,
}

/// One campaign's counters in a checkpoint, per channel.
#[derive(Serialize, Deserialize)]
struct Counters {
    campaign: String,
    offers: [u64; 3],
    impressions: [u64; 3],
    clicks: [u64; 3],
}

impl Ledger {
    pub fn new(
        hasher: IdentityHasher,
        inventory: Arc<Inventory>,
        delivery: Arc<Delivery>,
    ) -> Ledger {
        // The deduplication maps hold millions of keys and a checkpoint copies them
        // shard by shard under each shard's lock: many shards keep each wait short.
        Ledger {
            spend: DashMap::new(),
            events: DashMap::with_shard_amount(crate::delivery::profiles::PROFILE_SHARDS),
            conversions: DashMap::with_shard_amount(crate::delivery::profiles::PROFILE_SHARDS),
            hasher,
            campaigns: DashMap::new(),
            inventory,
            delivery,
        }
    }

    /// The per-campaign live counters.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.delivery.registry
    }

    /// The last logged version of campaign `id`.
    pub fn campaign_version(&self, id: &str) -> Option<CampaignVersion> {
        self.campaigns.get(id).map(|v| *v)
    }

    /// Every campaign the log knows, with its last version.
    pub fn campaign_versions(&self) -> Vec<(String, CampaignVersion)> {
        (self.campaigns.iter())
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }

    fn note_campaign(&self, r: &Record) {
        let (Some(id), Some(version)) = (r.campaign.as_deref(), r.version) else {
            return;
        };
        let deleted = r.action.as_deref() == Some("delete");
        let digest = r.document.as_deref().map_or(0, document_digest);
        let v = CampaignVersion {
            version,
            digest,
            deleted,
        };
        self.campaigns
            .entry(id.to_string())
            .and_modify(|old| {
                if version >= old.version {
                    *old = v;
                }
            })
            .or_insert(v);
    }

    /// Marks an event of an offer as seen; `true` the first time only.
    pub fn first_event(&self, decision: u128, slot: u8, event: Event, decision_ms: i64) -> bool {
        let mut first = false;
        self.events
            .entry((decision, slot, event as u8))
            .or_insert_with(|| {
                first = true;
                decision_ms
            });
        first
    }

    pub fn has_event(&self, decision: u128, slot: u8, event: Event) -> bool {
        self.events.contains_key(&(decision, slot, event as u8))
    }

    /// Forgets an event mark (its record could not be logged).
    pub fn unmark_event(&self, decision: u128, slot: u8, event: Event) {
        self.events.remove(&(decision, slot, event as u8));
    }

    pub fn conversion_key(&self, channel: &str, order_id: &str, kind: ConversionType) -> u128 {
        self.hasher.keyed(&[
            b"conversion",
            channel.as_bytes(),
            order_id.as_bytes(),
            kind.as_str().as_bytes(),
        ])
    }

    /// Marks a conversion as seen; `true` the first time only.
    pub fn first_conversion(&self, key: u128, occurred_ms: i64) -> bool {
        let mut first = false;
        self.conversions.entry(key).or_insert_with(|| {
            first = true;
            occurred_ms
        });
        first
    }

    pub fn has_conversion(&self, key: u128) -> bool {
        self.conversions.contains_key(&key)
    }

    /// Forgets conversion marks whose records could not be made durable, so that the
    /// client's retry is accepted.
    pub fn unmark_conversions(&self, keys: &[u128]) {
        for k in keys {
            self.conversions.remove(k);
        }
    }

    /// Adds `amount` micros to a campaign's spend on `day`.
    pub fn charge(&self, campaign: &str, day: i32, amount: i64) {
        if amount <= 0 {
            return;
        }
        match self.spend.get_mut(campaign) {
            Some(mut s) => s.add(day, amount),
            None => self
                .spend
                .entry(Arc::from(campaign))
                .or_default()
                .add(day, amount),
        }
    }

    /// Charges up to `amount` micros on `day`, never past what is left of the daily
    /// or total budget (`None`: unlimited); returns what was charged. Atomic per
    /// campaign: concurrent events cannot both take the last of a budget.
    pub fn charge_capped(
        &self,
        campaign: &str,
        day: i32,
        amount: i64,
        daily: Option<i64>,
        total: Option<i64>,
    ) -> i64 {
        if amount <= 0 {
            return 0;
        }
        let mut spend = match self.spend.get_mut(campaign) {
            Some(s) => s,
            None => self.spend.entry(Arc::from(campaign)).or_default(),
        };
        let left_today = daily.map_or(i64::MAX, |d| d - spend.on_day(day));
        let left_total = total.map_or(i64::MAX, |t| t - spend.total);
        let charged = amount.min(left_today.min(left_total).max(0));
        if charged > 0 {
            spend.add(day, charged);
        }
        charged
    }

    /// Takes back a charge whose record could not be logged.
    pub fn refund(&self, campaign: &str, day: i32, amount: i64) {
        if amount > 0
            && let Some(mut s) = self.spend.get_mut(campaign)
        {
            s.add(day, -amount);
        }
    }

    /// (charged today, charged in total) without copying the history.
    pub fn spent(&self, campaign: &str, day: i32) -> (i64, i64) {
        self.spend
            .get(campaign)
            .map_or((0, 0), |s| (s.on_day(day), s.total))
    }

    pub fn spend(&self, campaign: &str) -> Spend {
        self.spend
            .get(campaign)
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Applies a record read back from the log. Idempotent: a record whose key is
    /// already marked changes nothing. `campaigns` tells what replay needs to know
    /// about the loaded campaigns.
    pub fn apply(&self, r: &Record, campaigns: &dyn Campaigns) {
        if r.kind == Kind::Decision
            && let (Some(campaign), Some(ch)) = (r.campaign.as_deref(), r.channel)
        {
            CampaignLive::count(&self.delivery.registry.get(campaign).offers[ch as usize]);
        }
        self.replay_delivery(r, campaigns);
        let day_of = |campaign: &str, ms: i64| campaigns.day_of(campaign, ms);
        let event = match r.kind {
            Kind::Impression => Some(Event::Impression),
            Kind::Click => Some(Event::Click),
            Kind::Purchase => Some(Event::Purchase),
            Kind::Campaign => {
                self.note_campaign(r);
                None
            }
            Kind::Conversion => {
                if let (Some(ch), Some(order), Some(t)) =
                    (r.channel, r.order_id.as_deref(), r.conversion_type)
                {
                    let key = self.conversion_key(ch.as_str(), order, t);
                    self.first_conversion(key, r.occurred.unwrap_or(r.ts));
                }
                None
            }
            _ => None,
        };
        if let (Some(event), Some(d), Some(slot)) = (event, r.decision(), r.slot)
            && self.first_event(d.0, slot, event, r.decision_ts.unwrap_or(r.ts))
        {
            if let (Some(campaign), Some(cost)) = (r.campaign.as_deref(), r.cost) {
                self.charge(campaign, day_of(campaign, r.ts), cost);
            }
            if let (Some(campaign), Some(ch)) = (r.campaign.as_deref(), r.channel) {
                let live = self.delivery.registry.get(campaign);
                match event {
                    Event::Impression => CampaignLive::count(&live.impressions[ch as usize]),
                    Event::Click => CampaignLive::count(&live.clicks[ch as usize]),
                    Event::Purchase => {}
                }
            }
            if event == Event::Purchase {
                self.note_purchase(r);
            }
        }
    }

    /// The identity links, offers served, holdout groups and purchases a record shows.
    fn replay_delivery(&self, r: &Record, campaigns: &dyn Campaigns) {
        let d = &self.delivery;
        if r.kind == Kind::Erasure {
            // Forget again whatever the checkpoint or the records before it taught.
            let ids: Vec<IdHash> = (r.ids.iter())
                .map(|l| IdHash {
                    kind: l.kind,
                    hash: l.hash.0,
                })
                .collect();
            d.erase(&ids);
            if let Some(p) = r.profile {
                d.profiles.forget(p.0);
            }
            d.erasures
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .note(r);
            return;
        }
        if d.erasures
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .covers(r)
        {
            // An erased person's record: it still counts in spend and delivery, but
            // links and memory about them must not come back.
            return;
        }
        let ids: Vec<IdHash> = (r.ids.iter())
            .map(|l| IdHash {
                kind: l.kind,
                hash: l.hash.0,
            })
            .collect();
        match r.kind {
            // Identifiers are only ever logged with personalisation consent on the
            // decision side, and a conversion names its profile only when it linked.
            Kind::Decision | Kind::Nofill | Kind::Control if !ids.is_empty() => {
                d.link(&ids);
            }
            Kind::Conversion if r.profile.is_some() && !ids.is_empty() => {
                let Some(linked) = d.link(&ids) else { return };
                d.profiles
                    .saw(linked.profile.0, r.occurred.unwrap_or(r.ts), 0, 1);
                if r.conversion_type == Some(ConversionType::Purchase) {
                    let items = (r.items.iter())
                        .flat_map(|i| {
                            item_keys(i.sku.as_deref(), i.category.as_deref(), i.brand.as_deref())
                        })
                        .collect();
                    let at = r.occurred.unwrap_or(r.ts);
                    d.profiles.purchased(linked.profile.0, at, items);
                }
                return;
            }
            _ => {}
        }
        if let (Some(profile), Kind::Decision | Kind::Nofill) = (r.profile, r.kind) {
            let p = d
                .graph
                .resolve(ProfileId(profile.0))
                .map_or(profile.0, |p| p.0);
            let exposures = u64::from(r.kind == Kind::Decision);
            d.profiles.saw(p, r.ts, exposures, 0);
        }
        let (Some(profile), Some(campaign)) = (r.profile, r.campaign.as_deref()) else {
            return;
        };
        let Some((window_ms, holdout)) = campaigns.delivery_of(campaign) else {
            return;
        };
        let p = d
            .graph
            .resolve(ProfileId(profile.0))
            .map_or(profile.0, |p| p.0);
        let hash = campaign_hash(campaign);
        match r.kind {
            Kind::Decision => {
                if window_ms > 0 {
                    d.profiles.served(p, hash, r.ts, window_ms);
                }
                if holdout > 0.0 {
                    let group = Group {
                        control: false,
                        since_ms: r.ts,
                    };
                    d.profiles.note_group(p, hash, group);
                }
            }
            Kind::Control => {
                let group = Group {
                    control: true,
                    since_ms: r.ts,
                };
                d.profiles.note_group(p, hash, group);
            }
            _ => {}
        }
    }

    /// An in-unit purchase read back from the log: its sale comes off the stock, and
    /// its order id is a known conversion (a later conversion for it is a duplicate).
    fn note_purchase(&self, r: &Record) {
        if let (Some(sku), Some(location), Some(quantity)) =
            (r.sku.as_deref(), r.location.as_deref(), r.quantity)
        {
            let at = r.occurred.unwrap_or(r.ts);
            self.inventory.record_sale(sku, location, quantity, at);
        }
        if let (Some(ch), Some(order)) = (r.channel, r.order_id.as_deref()) {
            let key = self.conversion_key(ch.as_str(), order, ConversionType::Purchase);
            self.first_conversion(key, r.ts);
        }
    }

    /// Drops dedup keys past their horizon: event marks of decisions older than
    /// `events_before_ms`, conversion marks older than `conversions_before_ms`.
    pub fn expire(&self, events_before_ms: i64, conversions_before_ms: i64) {
        self.events.retain(|_, t| *t >= events_before_ms);
        self.conversions.retain(|_, t| *t >= conversions_before_ms);
    }

    /// Writes a checkpoint atomically (temp file, fsync, rename).
    pub fn save_checkpoint(&self, path: &Path, offset: u64) -> std::io::Result<()> {
        let cp = Checkpoint {
            v: 1,
            offset,
            spend: self
                .spend
                .iter()
                .map(|e| (e.key().to_string(), e.value().clone()))
                .collect(),
            events: self
                .events
                .iter()
                .map(|e| (e.key().0, e.key().1, e.key().2, *e.value()))
                .collect(),
            conversions: self
                .conversions
                .iter()
                .map(|e| (*e.key(), *e.value()))
                .collect(),
            campaigns: self.campaign_versions(),
            sales: self.inventory.sales(),
            counters: (self.delivery.registry.all().into_iter())
                .map(|(id, live)| {
                    let load = |a: &[std::sync::atomic::AtomicU64; 3]| {
                        a.each_ref().map(|c| c.load(Ordering::Relaxed))
                    };
                    Counters {
                        campaign: id.to_string(),
                        offers: load(&live.offers),
                        impressions: load(&live.impressions),
                        clicks: load(&live.clicks),
                    }
                })
                .collect(),
        };
        let bytes = rmp_serde::to_vec(&cp).map_err(std::io::Error::other)?;
        crate::secrets::write_atomic(path, &bytes)
    }

    /// Loads a checkpoint into an empty ledger; returns the offset to replay from.
    pub fn load_checkpoint(&self, path: &Path) -> std::io::Result<Option<u64>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let cp: Checkpoint = rmp_serde::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        for (c, s) in cp.spend {
            self.spend.insert(Arc::from(c.as_str()), s);
        }
        for (d, slot, ev, t) in cp.events {
            self.events.insert((d, slot, ev), t);
        }
        for (k, t) in cp.conversions {
            self.conversions.insert(k, t);
        }
        for (id, v) in cp.campaigns {
            self.campaigns.insert(id, v);
        }
        for (sku, location, quantity, at) in cp.sales {
            self.inventory.record_sale(&sku, &location, quantity, at);
        }
        for c in cp.counters {
            let live = self.delivery.registry.get(&c.campaign);
            for ch in 0..3 {
                live.offers[ch].store(c.offers[ch], Ordering::Relaxed);
                live.impressions[ch].store(c.impressions[ch], Ordering::Relaxed);
                live.clicks[ch].store(c.clicks[ch], Ordering::Relaxed);
            }
        }
        Ok(Some(cp.offset))
    }

    /// Forgets everything (before a rebuild from the whole log).
    pub fn clear(&self) {
        self.spend.clear();
        self.events.clear();
        self.conversions.clear();
        self.campaigns.clear();
        self.inventory.clear_sales();
        for (_, live) in self.delivery.registry.all() {
            for ch in 0..3 {
                live.offers[ch].store(0, Ordering::Relaxed);
                live.impressions[ch].store(0, Ordering::Relaxed);
                live.clicks[ch].store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn event_keys(&self) -> usize {
        self.events.len()
    }

    pub fn conversion_keys(&self) -> usize {
        self.conversions.len()
    }
}
