//! The second pass: delivery counted, exposures remembered per profile, conversions
//! attributed item by item ([`credit`]), holdout groups followed.
//!
//! # Attribution rules
//!
//! - A conversion item *matches* a campaign when it shares a SKU, a brand (ignoring
//!   case) or a category by whole `/` segments with the campaign's `conversion` rule, as
//!   of the last `campaign` record before the conversion in the log (a deleted campaign
//!   keeps its last rule).
//! - The item goes to the campaign of the buyer's last **click** on a matching campaign
//!   within the click window before the purchase, else to the campaign of the last
//!   **impression** within the view window; one campaign at most. "Buyer" is the profile
//!   the conversion resolves to at the end of the log; an exposure is the buyer's when
//!   its profile resolves to the same.
//! - An exposure counts only when the server received it before the purchase: before
//!   the conversion's `timestamp`, and before the conversion record itself reached the
//!   log (a timestamp up to five minutes ahead is clock skew, not a purchase still to
//!   come). It never counts for the order whose decision it came from (`transaction_id`
//!   equal to the conversion's `order_id`).
//! - An in-unit purchase (`purchase` record) is a conversion of its own campaign in its
//!   own channel, whatever the rule; a `conversion` record for the same channel and order
//!   is the same order and is not counted again.
//! - A refund (same channel and order id) takes back what its purchase was credited:
//!   item by item (matched by SKU, category and brand, at most the quantity bought), or,
//!   when it lists no items, its `total` as a share of the order's. A campaign whose
//!   credited items are refunded completely loses the conversion.
//! - Records of an erased profile logged before its erasure count in delivery and spend
//!   but are never attributed.
//!
//! # Holdout groups
//!
//! A profile's group for a campaign is that of its first `decision` (exposed) or
//! `control` (control) record for the campaign, after resolution: when two profiles that
//! were assigned separately turn out to be one shopper, the earlier assignment stands,
//! as it does on the server. It converted when it bought an item matching the rule
//! after that assignment (not counting the order the assignment was made for).
//!
//! # Memory
//!
//! Per profile: the exposures a future conversion could still be credited to (younger
//! than the longer window plus the longest conversion delay seen in pass 1), the recent
//! decisions whose events may still arrive (to know the order each event's decision was
//! made for), and one entry per holdout campaign the profile was assigned to. Expired
//! entries are swept as the log's clock advances.

mod credit;
mod state;

use super::links::Links;
use super::model::{LogSummary, Overall, Period, REPORT_VERSION, Report, ratio};
use super::packed::Packed;
use super::stream::{Work, stream};
use super::tally::{self, Campaigns, Placements};
use super::wire::{self, Fields, View};
use super::{FastMap, Options, Progress, ReportError, txn_key};
use crate::config::DEFAULT_CLICK_TTL_SECS;
use crate::exposure::record::Kind;
use crate::exposure::view::time;
use state::{Entry, State};
use std::path::Path;

/// Log-clock slack for records written slightly out of time order.
const SLACK_MS: i64 = 60_000;
/// Sweep every profile for expired entries at most once per day of log time.
const SWEEP_EVERY_MS: i64 = 86_400_000;

/// Profiles and what is remembered about each.
///
/// Profile ids are the identity graph's 128-bit keyed hashes, uniform and unpredictable;
/// the map keys them by 64 bits (folded), which halves its memory at a million profiles.
/// Two profiles share a key with a probability of about n² / 2⁶⁵ (10⁻⁷ for a million),
/// as two orders share a 64-bit order key.
#[derive(Default)]
struct Profiles {
    /// A profile id (as on a record, or as resolved), folded → its state's number.
    slots: FastMap<u64, u32>,
    states: Vec<State>,
}

impl Profiles {
    /// Room for about `n` profiles, so that the two big tables are allocated once
    /// rather than doubled (and briefly held twice) as they fill.
    fn with_capacity(n: usize) -> Profiles {
        let mut slots = FastMap::default();
        slots.reserve(n + n / 8);
        Profiles {
            slots,
            states: Vec::with_capacity(n + n / 16),
        }
    }

    fn get(&self, profile: u128) -> Option<u32> {
        self.slots.get(&fold(profile)).copied()
    }

    /// The state of the profile `raw` resolves to, created when new.
    fn slot(&mut self, links: &Links, raw: u128) -> u32 {
        if let Some(s) = self.get(raw) {
            return s;
        }
        let resolved = links.resolve(raw);
        let s = match self.get(resolved) {
            Some(s) => s,
            None => {
                let s = self.states.len() as u32;
                self.states.push(State::Empty);
                self.slots.insert(fold(resolved), s);
                s
            }
        };
        self.slots.insert(fold(raw), s);
        s
    }
}

/// The second pass. Build with [`Attribution::new`], then [`Attribution::run`].
pub struct Attribution<'a> {
    options: &'a Options,
    links: &'a Links,
    campaigns: Campaigns,
    placements: Placements,
    profiles: Profiles,
    memos: FastMap<u64, credit::Memo>,
    /// In-period purchases by buyers without decisions so far, by resolved profile: they
    /// count as resolved to a known profile if decisions for it come later in the log.
    pending: FastMap<u128, u64>,
    overall: Overall,
    kinds: [u64; Kind::ALL.len()],
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    currency: Option<String>,
    /// The decision whose records are being read (a decision's records are contiguous).
    last_decision: Option<u128>,
    /// How long exposures and decisions are remembered.
    keep_seen_ms: i64,
    keep_offers_ms: i64,
    next_sweep: i64,
    since_sweep: u64,
}

impl<'a> Attribution<'a> {
    pub fn new(options: &'a Options, links: &'a Links) -> Attribution<'a> {
        let window = options.click_window_ms.max(options.view_window_ms);
        let click_ttl = DEFAULT_CLICK_TTL_SECS as i64 * 1000;
        Attribution {
            options,
            links,
            campaigns: Campaigns::default(),
            placements: Placements::default(),
            profiles: Profiles::with_capacity(links.graph.stats().profiles as usize),
            memos: FastMap::default(),
            pending: FastMap::default(),
            overall: Overall::default(),
            kinds: [0; Kind::ALL.len()],
            first_ts: None,
            last_ts: None,
            currency: None,
            last_decision: None,
            keep_seen_ms: window + links.max_delay_ms + SLACK_MS,
            keep_offers_ms: click_ttl.max(options.click_window_ms) + 3_600_000,
            next_sweep: i64::MIN,
            since_sweep: 0,
        }
    }

    /// Reads the log over the offsets pass 1 read and builds the report.
    pub fn run(
        mut self,
        dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Report, ReportError> {
        let (start, end) = (self.links.start, self.links.end);
        // Records are decoded on either thread (see `stream`) and attributed on this one.
        let decode = |offset: u64, payload: &[u8], bytes: &mut Vec<u8>| {
            Ok(Some(Packed::pack(&read(offset, payload)?, bytes)))
        };
        let span = stream(
            dir,
            Some(start),
            Some(end),
            2,
            &decode,
            &mut |batch| {
                for (offset, work) in &batch.items {
                    match work {
                        Work::Done(packed) => self.record(*offset, &packed.view(&batch.bytes))?,
                        Work::Raw(a, b) => {
                            self.record(*offset, &read(*offset, batch.raw(*a, *b))?)?
                        }
                    }
                }
                Ok(())
            },
            progress,
        )?;
        Ok(self.finish(span.records, span.end))
    }

    fn record(&mut self, offset: u64, v: &View) -> Result<(), ReportError> {
        if v.unknown_kind {
            return Ok(());
        }
        self.kinds[v.kind as usize] += 1;
        self.first_ts.get_or_insert(v.ts);
        self.last_ts = Some(self.last_ts.map_or(v.ts, |t| t.max(v.ts)));
        self.maybe_sweep(v.ts);
        match v.kind {
            Kind::Campaign => {
                if let Some(id) = v.campaign {
                    let c = self.campaigns.intern(id);
                    (self.campaigns.get(c)).apply_change(v.action, v.document, v.advertiser);
                }
            }
            Kind::Decision | Kind::Nofill | Kind::Control => self.decision(offset, v),
            Kind::Impression | Kind::Click => self.exposure(offset, v),
            Kind::Conversion => self.conversion(offset, v)?,
            Kind::Purchase => self.purchase(offset, v),
            Kind::Erasure | Kind::Invalid => {}
        }
        Ok(())
    }

    /// The profile state a decision-side record belongs to, unless it has no profile or
    /// was redacted by a later erasure.
    fn exposure_slot(&mut self, offset: u64, v: &View) -> Option<u32> {
        let p = v.profile?;
        if self.links.redacted(p, offset) {
            return None;
        }
        Some(self.profiles.slot(self.links, p))
    }

    fn decision(&mut self, offset: u64, v: &View) {
        let in_period = self.options.in_period(v.ts);
        if v.kind != Kind::Control
            && in_period
            && let (Some(placement), Some(channel)) = (v.placement, v.channel)
        {
            let p = self.placements.at(placement, channel);
            let first = v.kind == Kind::Nofill
                || v.decision_id.is_none()
                || v.decision_id != self.last_decision;
            if first {
                p.requests += 1;
                p.filled += u64::from(v.kind == Kind::Decision);
            }
            p.offers += u64::from(v.kind == Kind::Decision);
        }
        if v.kind != Kind::Control {
            self.last_decision = v.decision_id;
        }
        let campaign = v.campaign.map(|id| self.campaigns.intern(id));
        if let Some(c) = campaign {
            let c = self.campaigns.get(c);
            match v.kind {
                Kind::Decision if in_period => c.decisions += 1,
                Kind::Control => c.controls += 1,
                _ => {}
            }
        }
        let Some(slot) = self.exposure_slot(offset, v) else {
            return;
        };
        let txn = v.transaction_id.map_or(0, txn_key);
        let state = self.profiles.states[slot as usize].entries();
        // One entry per decision (its other offers share it), and none for a decision
        // without an order: nothing could be excluded for it.
        if let Some(d) = v.decision_id.map(fold)
            && txn != 0
            && !(state.iter().rev()).any(|e| e.decision().is_some_and(|(x, _)| x == d))
        {
            let offer = Entry::Offer {
                decision: d,
                txn,
                ts: v.ts,
            };
            self.push(slot, offer, v.ts);
        }
        let Some(c) = campaign else { return };
        let control = v.kind == Kind::Control;
        let follow = control || (v.kind == Kind::Decision && self.campaigns.get(c).has_holdout());
        let assigned = || {
            (self.profiles.states[slot as usize].entries().iter())
                .any(|e| matches!(e, Entry::Group { campaign, .. } if *campaign == c))
        };
        if follow && !assigned() {
            let group = Entry::Group {
                campaign: c,
                control,
                converted: false,
                in_period,
                since: v.ts,
                txn,
                revenue: 0,
            };
            self.push(slot, group, v.ts);
        }
    }

    fn exposure(&mut self, offset: u64, v: &View) {
        let click = v.kind == Kind::Click;
        let cost = v.cost.unwrap_or(0);
        let in_period = self.options.in_period(v.ts);
        if in_period && let (Some(placement), Some(channel)) = (v.placement, v.channel) {
            let p = self.placements.at(placement, channel);
            p.impressions += u64::from(!click);
            p.clicks += u64::from(click);
            p.spend += cost;
        }
        let Some(c) = v.campaign.map(|id| self.campaigns.intern(id)) else {
            return;
        };
        let campaign = self.campaigns.get(c);
        if in_period {
            campaign.impressions += u64::from(!click);
            campaign.clicks += u64::from(click);
            campaign.spend += cost;
        }
        let holdout = campaign.has_holdout();
        let (Some(slot), Some(channel)) = (self.exposure_slot(offset, v), v.channel) else {
            return;
        };
        let d = v.decision_id.map_or(0, fold);
        let state = &mut self.profiles.states[slot as usize];
        // The order of the decision behind the event, from its offer (which the first
        // event then replaces) or from an earlier event of the same decision.
        let mut replace = None;
        let mut txn = 0;
        for (i, e) in state.entries().iter().enumerate().rev() {
            if let Some((decision, t)) = e.decision()
                && decision == d
            {
                txn = t;
                replace = matches!(e, Entry::Offer { .. }).then_some(i);
                break;
            }
        }
        let exposed = holdout
            && in_period
            && state.entries().iter().any(|e| {
                matches!(e, Entry::Group { campaign, control: false, in_period: true, .. } if *campaign == c)
            });
        let seen = Entry::Seen {
            campaign: c,
            click,
            channel,
            ts: v.ts,
            decision: d,
            txn,
        };
        match replace {
            Some(i) => state.entries_mut()[i] = seen,
            None => self.push(slot, seen, v.ts),
        }
        if exposed {
            self.campaigns.get(c).exposed_spend += cost;
        }
    }

    fn maybe_sweep(&mut self, now: i64) {
        self.since_sweep += 1;
        if now < self.next_sweep || self.since_sweep < self.profiles.states.len() as u64 {
            return;
        }
        self.next_sweep = now.saturating_add(SWEEP_EVERY_MS);
        self.since_sweep = 0;
        let (seen, offers) = self.cutoffs(now);
        for state in &mut self.profiles.states {
            prune(state, seen, offers);
        }
    }

    /// Adds an entry to a profile, pruning its expired entries first when it is full:
    /// memory for a profile grows only with what it still needs.
    fn push(&mut self, slot: u32, e: Entry, now: i64) {
        let (seen, offers) = self.cutoffs(now);
        let state = &mut self.profiles.states[slot as usize];
        if state.is_full() {
            prune(state, seen, offers);
        }
        state.push(e);
    }

    /// Exposures before the first and decisions before the second can no longer matter.
    fn cutoffs(&self, now: i64) -> (i64, i64) {
        (
            now.saturating_sub(self.keep_seen_ms),
            now.saturating_sub(self.keep_offers_ms),
        )
    }

    fn finish(mut self, records: u64, end: u64) -> Report {
        for state in &self.profiles.states {
            for e in state.entries() {
                if let Entry::Group {
                    campaign,
                    control,
                    converted,
                    in_period: true,
                    revenue,
                    ..
                } = *e
                {
                    let c = self.campaigns.get(campaign);
                    let group = if control {
                        &mut c.control
                    } else {
                        &mut c.exposed
                    };
                    group.0 += u64::from(converted);
                    group.1.add(super::model::major(revenue));
                }
            }
        }
        let all: Vec<_> = self.campaigns.list.iter().map(|c| c.row()).collect();
        let everywhere = tally::totals(&all);
        let mut rows: Vec<_> = match &self.options.campaign {
            Some(id) => all.into_iter().filter(|r| &r.campaign_id == id).collect(),
            None => all,
        };
        rows.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        let mut overall = self.overall;
        overall.cross_channel_rate = everywhere.cross_channel_rate;
        overall.resolved_purchases += (self.pending.iter())
            .filter(|(p, _)| self.profiles.get(**p).is_some())
            .map(|(_, n)| n)
            .sum::<u64>();
        overall.identity_resolution_rate =
            ratio(overall.resolved_purchases as f64, overall.purchases as f64);
        overall.profiles = self.profiles.states.len() as u64;
        overall.identifiers = self.links.graph.stats().identifiers;
        let kinds = (Kind::ALL.iter())
            .filter(|k| self.kinds[**k as usize] > 0)
            .map(|k| (k.as_str().to_string(), self.kinds[*k as usize]))
            .collect();
        let o = self.options;
        Report {
            report_version: REPORT_VERSION,
            period: Period {
                from: o.from_ms.map(time),
                to: o.to_ms.map(time),
                click_window_secs: (o.click_window_ms / 1000) as u64,
                view_window_secs: (o.view_window_ms / 1000) as u64,
            },
            log: LogSummary {
                records,
                kinds,
                first_ts: self.first_ts.map(time),
                last_ts: self.last_ts.map(time),
                end_offset: end,
            },
            currency: self.currency,
            totals: tally::totals(&rows),
            campaigns: rows,
            overall,
            placements: self.placements.rows(),
        }
    }
}

/// Reads what pass 2 needs of a record: everything but the arrays, which only
/// conversions need (pass 1 has linked the identifiers).
fn read(offset: u64, payload: &[u8]) -> Result<View<'_>, ReportError> {
    let select = |k: Kind| match k {
        Kind::Conversion => Fields::ALL,
        _ => Fields::SCALARS,
    };
    wire::read_some(payload, &select).map_err(|e| ReportError::Record {
        offset,
        reason: e.to_string(),
    })
}

/// Drops exposures older than `seen` and decisions older than `offers`; holdout groups
/// stay.
fn prune(state: &mut State, seen: i64, offers: i64) {
    state.retain(|e| match e {
        Entry::Seen { ts, .. } => *ts >= seen,
        Entry::Offer { ts, .. } => *ts >= offers,
        Entry::Group { .. } => true,
    });
}

/// A 128-bit id folded to 64 bits.
fn fold(d: u128) -> u64 {
    d as u64 ^ (d >> 64) as u64
}
