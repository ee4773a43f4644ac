//! Crediting purchases: conversions item by item, in-unit purchases, refunds.

use super::{Attribution, Entry};
use crate::campaign::Channel;
use crate::delivery::profiles::item_keys;
use crate::exposure::record::ConversionType;
use crate::identity::IdHash;
use crate::measure::wire::{Item, View, as_str, text};
use crate::measure::{ReportError, order_key, txn_key};

/// An order that a refund will name: how its lines were credited.
pub(super) struct Memo {
    channel: Channel,
    slot: Option<u32>,
    /// The order's total (or the sum of its lines), for refunds that give only a total.
    total: i64,
    lines: Vec<Line>,
    /// Counted in `attributed_orders` and not yet taken back.
    attributed: bool,
}

struct Line {
    /// SKU, category and brand, hashed: how a refund's item finds the line.
    item: u64,
    quantity: u32,
    value: i64,
    left: i64,
    /// The campaign credited, and whether across channels.
    campaign: Option<(u32, bool)>,
    /// Holdout campaigns whose group revenue it went to.
    groups: Vec<u32>,
}

/// One campaign's share of an order while it is being credited.
struct Share {
    campaign: u32,
    cross: bool,
}

fn line_key(sku: Option<&[u8]>, category: Option<&[u8]>, brand: Option<&[u8]>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [sku, category, brand] {
        h.update(part.unwrap_or(b"\0"));
        h.update(&[0xff]);
    }
    h.digest()
}

/// The keys an item matches rules by (see `delivery::profiles::item_keys`).
fn keys_of(sku: Option<&[u8]>, category: Option<&[u8]>, brand: Option<&[u8]>) -> Vec<u64> {
    item_keys(as_str(sku), as_str(category), as_str(brand))
}

impl Attribution<'_> {
    pub(super) fn conversion(&mut self, offset: u64, v: &View) -> Result<(), ReportError> {
        let (Some(channel), Some(order)) = (v.channel, v.order_id) else {
            return Ok(());
        };
        let key = order_key(channel, order);
        let kind = v.conversion_type.unwrap_or(ConversionType::Purchase);
        if kind == ConversionType::Purchase && self.links.in_unit.contains(&key) {
            return Ok(()); // the in-unit purchase already counted it
        }
        if self.currency.is_none() {
            self.currency = v.currency.map(|c| text(c).into_owned());
        }
        let at = v.occurred.unwrap_or(v.ts);
        let in_period = self.options.in_period(at);
        if kind == ConversionType::Refund {
            self.overall.refunds += u64::from(in_period);
            let items: Vec<Item> =
                v.items
                    .items()
                    .collect::<Result<_, _>>()
                    .map_err(|e| ReportError::Record {
                        offset,
                        reason: e.to_string(),
                    })?;
            self.refund(key, &items, v.total);
            return Ok(());
        }
        let buyer = self.buyer(offset, v)?;
        let slot = self.known(buyer, in_period);
        let Some(slot) = slot else {
            return Ok(());
        };
        // The purchase happened before the server heard of it.
        let t = at.min(v.ts);
        let order_txn = txn_key(order);
        let memo = self.links.refunded.contains(&key);
        let mut shares: Vec<Share> = Vec::new();
        let mut lines: Vec<Line> = Vec::new();
        for item in v.items.items() {
            let item = item.map_err(|e| ReportError::Record {
                offset,
                reason: e.to_string(),
            })?;
            let keys = keys_of(item.sku, item.category, item.brand);
            let value = item.price.saturating_mul(i64::from(item.quantity));
            let winner = self.winner(slot, &keys, t, order_txn);
            let mut line = Line {
                item: line_key(item.sku, item.category, item.brand),
                quantity: item.quantity,
                value,
                left: value,
                campaign: None,
                groups: Vec::new(),
            };
            if in_period {
                if let Some((c, seen_in)) = winner {
                    let cross = seen_in != channel;
                    self.campaigns.get(c).revenue[channel as usize] += value;
                    if !shares.iter().any(|s| s.campaign == c) {
                        shares.push(Share { campaign: c, cross });
                    }
                    line.campaign = Some((c, cross));
                }
                line.groups = self.credit_groups(slot, &keys, t, order_txn, value);
            }
            if memo {
                lines.push(line);
            }
        }
        for s in &shares {
            let c = self.campaigns.get(s.campaign);
            c.conversions += 1;
            c.cross_channel += u64::from(s.cross);
        }
        self.overall.attributed_orders += u64::from(!shares.is_empty());
        if memo {
            let total = v
                .total
                .unwrap_or_else(|| lines.iter().map(|l| l.value).sum());
            self.memos.insert(
                key,
                Memo {
                    channel,
                    slot: Some(slot),
                    total,
                    lines,
                    attributed: !shares.is_empty(),
                },
            );
        }
        Ok(())
    }

    /// Counts a purchase (in the period) and whether its buyer is a known profile, one
    /// with decisions; returns the buyer's state when it has one already.
    fn known(&mut self, buyer: Option<u128>, in_period: bool) -> Option<u32> {
        let slot = buyer.and_then(|p| self.profiles.get(p));
        if in_period {
            self.overall.purchases += 1;
            match (buyer, slot) {
                (_, Some(_)) => self.overall.resolved_purchases += 1,
                // Decisions for it may come later in the log: decided at the end.
                (Some(p), None) => *self.pending.entry(p).or_default() += 1,
                (None, None) => {}
            }
        }
        slot
    }

    /// The profile a conversion resolves to at the end of the log (or a profile id that
    /// is already known to resolve to the same), unless it has none or was erased after
    /// this record.
    fn buyer(&mut self, offset: u64, v: &View) -> Result<Option<u128>, ReportError> {
        if let Some(p) = v.profile {
            if self.links.redacted(p, offset) {
                return Ok(None);
            }
            // A profile id seen on a decision maps to its state without a graph lookup.
            if self.profiles.get(p).is_some() {
                return Ok(Some(p));
            }
            return Ok(Some(self.links.resolve(p)));
        }
        if v.ids.is_empty() {
            return Ok(None);
        }
        let ids: Vec<IdHash> =
            v.ids
                .ids()
                .collect::<Result<_, _>>()
                .map_err(|e| ReportError::Record {
                    offset,
                    reason: e.to_string(),
                })?;
        if ids.iter().any(|id| self.links.redacted(id.hash, offset)) {
            return Ok(None);
        }
        Ok(self.links.profile_of(&ids))
    }

    /// The campaign an item goes to and the channel of the exposure credited: the last
    /// click on a matching campaign within the click window before `t`, else the last
    /// impression within the view window. Exposures from the order's own decision do
    /// not count.
    fn winner(&self, slot: u32, keys: &[u64], t: i64, order_txn: u64) -> Option<(u32, Channel)> {
        let (click_w, view_w) = (self.options.click_window_ms, self.options.view_window_ms);
        let mut best: Option<(bool, i64, u32, Channel)> = None;
        for e in self.profiles.states[slot as usize].entries() {
            let Entry::Seen {
                campaign,
                click,
                channel,
                ts,
                txn,
                ..
            } = *e
            else {
                continue;
            };
            let window = if click { click_w } else { view_w };
            if ts >= t || ts < t.saturating_sub(window) || txn == order_txn {
                continue;
            }
            // Clicks beat impressions; then the later one (or the later in the log).
            if best.is_some_and(|(bc, bts, ..)| (bc, bts) > (click, ts)) {
                continue;
            }
            if !self.campaigns.list[campaign as usize].matches(keys) {
                continue;
            }
            best = Some((click, ts, campaign, channel));
        }
        best.map(|(_, _, c, ch)| (c, ch))
    }

    /// Adds a matching item bought at `t` to the profile's holdout groups assigned
    /// before it; returns the campaigns credited.
    fn credit_groups(
        &mut self,
        slot: u32,
        keys: &[u64],
        t: i64,
        order_txn: u64,
        value: i64,
    ) -> Vec<u32> {
        let mut credited = Vec::new();
        let campaigns = &self.campaigns.list;
        for e in self.profiles.states[slot as usize].entries_mut() {
            if let Entry::Group {
                campaign,
                converted,
                since,
                txn,
                revenue,
                ..
            } = e
                && *since < t
                && *txn != order_txn
                && campaigns[*campaign as usize].matches(keys)
            {
                *converted = true;
                *revenue += value;
                credited.push(*campaign);
            }
        }
        credited
    }

    /// An in-unit purchase: a conversion of its campaign, in its channel.
    pub(super) fn purchase(&mut self, offset: u64, v: &View) {
        let (Some(channel), Some(order), Some(id)) = (v.channel, v.order_id, v.campaign) else {
            return;
        };
        if self.currency.is_none() {
            self.currency = v.currency.map(|c| text(c).into_owned());
        }
        let at = v.occurred.unwrap_or(v.ts);
        let in_period = self.options.in_period(at);
        let quantity = v.quantity.unwrap_or(1);
        let value = v
            .total
            .unwrap_or_else(|| v.price.unwrap_or(0).saturating_mul(i64::from(quantity)));
        let c = self.campaigns.intern(id);
        let profile = v.profile.filter(|p| !self.links.redacted(*p, offset));
        let slot = profile.map(|p| self.profiles.slot(self.links, p));
        if in_period {
            self.overall.purchases += 1;
            self.overall.resolved_purchases += u64::from(slot.is_some());
        }
        let mut line = Line {
            item: line_key(v.sku, None, None),
            quantity,
            value,
            left: value,
            campaign: Some((c, false)),
            groups: Vec::new(),
        };
        if in_period {
            self.overall.attributed_orders += 1;
            let campaign = self.campaigns.get(c);
            campaign.revenue[channel as usize] += value;
            campaign.conversions += 1;
            if let Some(slot) = slot {
                let keys = keys_of(v.sku, None, None);
                line.groups = self.credit_groups(slot, &keys, at, txn_key(order), value);
            }
        } else {
            line.campaign = None;
        }
        let key = order_key(channel, order);
        if self.links.refunded.contains(&key) {
            self.memos.insert(
                key,
                Memo {
                    channel,
                    slot,
                    total: value,
                    lines: vec![line],
                    attributed: in_period,
                },
            );
        }
    }

    /// Takes back what a refunded order was credited.
    fn refund(&mut self, key: u64, items: &[Item], total: Option<i64>) {
        let Some(mut memo) = self.memos.remove(&key) else {
            return;
        };
        let before: Vec<(u32, bool, i64)> = campaign_values(&memo);
        let mut taken: Vec<(usize, i64)> = Vec::new();
        if !items.is_empty() {
            for item in items {
                let k = line_key(item.sku, item.category, item.brand);
                let mut want = item.price.saturating_mul(i64::from(item.quantity));
                for (i, line) in memo.lines.iter_mut().enumerate() {
                    if want == 0 {
                        break;
                    }
                    if line.item != k || line.left == 0 {
                        continue;
                    }
                    // At most what this line is still worth.
                    let unit = line.value / i64::from(line.quantity.max(1));
                    let most = unit.saturating_mul(i64::from(item.quantity)).min(line.left);
                    let amount = want.min(most).max(0);
                    line.left -= amount;
                    want -= amount;
                    taken.push((i, amount));
                }
            }
        } else if let Some(total) = total.filter(|_| memo.total > 0) {
            let share = (total as f64 / memo.total as f64).clamp(0.0, 1.0);
            for (i, line) in memo.lines.iter_mut().enumerate() {
                let amount = ((line.value as f64 * share).round() as i64).min(line.left);
                line.left -= amount;
                taken.push((i, amount));
            }
        }
        for (i, amount) in taken {
            let line = &memo.lines[i];
            if let Some((c, _)) = line.campaign {
                self.campaigns.get(c).revenue[memo.channel as usize] -= amount;
            }
            if let Some(slot) = memo.slot {
                for e in self.profiles.states[slot as usize].entries_mut() {
                    if let Entry::Group {
                        campaign, revenue, ..
                    } = e
                        && line.groups.contains(campaign)
                    {
                        *revenue -= amount;
                    }
                }
            }
        }
        // A campaign whose credited lines are all refunded loses the conversion.
        let after = campaign_values(&memo);
        for (c, cross, was) in before {
            let now = after.iter().find(|a| a.0 == c).map_or(0, |a| a.2);
            if was > 0 && now == 0 {
                let campaign = self.campaigns.get(c);
                campaign.conversions = campaign.conversions.saturating_sub(1);
                campaign.cross_channel = campaign.cross_channel.saturating_sub(u64::from(cross));
            }
        }
        if memo.attributed && after.iter().all(|a| a.2 == 0) {
            self.overall.attributed_orders = self.overall.attributed_orders.saturating_sub(1);
            memo.attributed = false;
        }
        // Another refund of the same order may follow.
        self.memos.insert(key, memo);
    }
}

/// What each credited campaign still holds of an order.
fn campaign_values(memo: &Memo) -> Vec<(u32, bool, i64)> {
    let mut out: Vec<(u32, bool, i64)> = Vec::new();
    for line in &memo.lines {
        if let Some((c, cross)) = line.campaign {
            match out.iter_mut().find(|o| o.0 == c) {
                Some(o) => o.2 += line.left,
                None => out.push((c, cross, line.left)),
            }
        }
    }
    out
}
