//! Budget leases: a fleet spends each budget once, and no decision waits for Redis.
//!
//! Redis holds, per campaign, the micros *committed* to nodes: per campaign day
//! (`budget:{id}:day:{day}`, for daily budgets) and in total (`budget:{id}:total`).
//! A node takes a lease, a slice of what remains (`lease_percent` of it, at least
//! `lease_min_micros`, at most all of it), with one Lua script that raises both
//! figures only as far as both budgets allow. Committed can therefore never pass a
//! budget, whatever the nodes do concurrently, and each node admits offers locally
//! against its own slice (see [`crate::delivery::budget`]): its charges since the
//! lease began plus its reservations stay within what it was granted. So the fleet's
//! spend cannot pass the budget either (cpm exactly; a cpc click can cost more than it
//! reserved, as on one node).
//!
//! A task tops leases up every `lease_interval_ms` (one pipeline per round for all
//! campaigns), as soon as less than half a
//! slice is left, so a busy node does not run dry between two ticks; it gives back
//! what a node did not use when a day ends (to the total), when a campaign is gone,
//! and at shutdown. Reservations still outstanding are not given back: their
//! impressions may still come. What is left unused at the end of a budget is the
//! slices nodes still hold: at most about `lease_percent` of what remained, per node,
//! plus what is reserved and never charged; a node that stops without giving back
//! (a crash) strands its slice.
//!
//! An impression or click that reaches another node than the one that served the
//! offer is charged there, against that node's lease (no Redis round trip on the
//! event path either): the fleet's total is the same, the serving node's reservation
//! simply expires. Even pacing compares the fleet's spend today (each node publishes
//! its own, read back every few ticks) with the day's elapsed share.

use super::Fleet;
use crate::app::App;
use crate::delivery::budget::Lease;
use crate::delivery::pacing;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const LEASE: &str = r"
local d = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(redis.call('GET', KEYS[2]) or '0')
local daily = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local room = nil
if daily >= 0 then room = daily - d end
if total >= 0 then
  local r = total - t
  if room == nil or r < room then room = r end
end
if room == nil or room <= 0 then return {0, 0} end
local want = math.max(tonumber(ARGV[4]), math.floor(room * tonumber(ARGV[3]) / 100))
if want > room then want = room end
redis.call('INCRBY', KEYS[1], want)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('INCRBY', KEYS[2], want)
return {want, room - want}
";

/// Day keys outlive their day by enough for any time zone and a late give-back.
const DAY_KEY_TTL_SECS: u64 = 3 * 86_400;
/// After a refused lease (budget committed), ask again this much later.
const RETRY_SPENT: Duration = Duration::from_secs(1);
/// Publish this node's spend and read the fleet's every so many ticks.
const SPEND_EVERY: u32 = 10;

/// What the task remembers per campaign.
#[derive(Default)]
struct Held {
    /// The last slice granted (0 before any): top up below half of it.
    slice: i64,
    /// Don't ask again before this (the budget was committed).
    quiet_until: Option<Instant>,
}

/// A lease to ask the fleet for.
struct Ask {
    live: Arc<crate::delivery::CampaignLive>,
    id: Arc<str>,
    day: i32,
    daily: i64,
    total: i64,
}

/// Keeps every budgeted campaign's lease topped up, one round per interval. Each
/// round asks Redis in a few pipelines (one for every lease to top up, one for the
/// spend figures every few rounds), not one round trip per campaign, so a round stays
/// short with thousands of campaigns.
pub async fn keep(fleet: Arc<Fleet>, app: Weak<App>) {
    let mut held: HashMap<Arc<str>, Held> = HashMap::new();
    let mut tick = tokio::time::interval(fleet.lease_interval().max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        let _round = fleet.leasing.lock().await;
        if fleet.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(app) = app.upgrade() else { return };
        n = n.wrapping_add(1);
        let spend_round = n % SPEND_EVERY == 1;
        let now = app.clock.now_ms();
        let snap = app.snapshot.load_full();
        let budgets = &app.delivery.budgets;
        let mut balance = 0;
        let mut asks = Vec::new();
        let mut spends = Vec::new();
        for c in snap.campaigns() {
            let (daily, total) = (c.doc.budget.daily, c.doc.budget.total);
            if daily.is_none() && total.is_none() {
                continue;
            }
            let (day, _) = pacing::local_day(c.tz, now);
            let (today, _) = app.ledger.spent(&c.id, day);
            let reserved = budgets.reserved(&c.live, now);
            let h = held.entry(c.id.clone()).or_default();
            let lease = match budgets.lease(&c.live) {
                Some(l) if l.day == day => l,
                old => {
                    if let Some(old) = old {
                        // A new day: what yesterday's lease left goes back to the total.
                        let (then, _) = app.ledger.spent(&c.id, old.day);
                        give_back(&fleet, &c.id, None, old.left(then, 0)).await;
                    }
                    let fresh = Lease {
                        day,
                        granted: 0,
                        base: today,
                        others_today: 0,
                    };
                    budgets.set_lease(&c.live, Some(fresh));
                    h.slice = 0;
                    fresh
                }
            };
            if spend_round {
                spends.push((c.live.clone(), c.id.clone(), day, today));
            }
            let left = lease.left(today, reserved);
            balance += left.max(0);
            let low = h.slice == 0 || left < h.slice / 2;
            let quiet = h.quiet_until.is_some_and(|t| Instant::now() < t);
            if low && !quiet {
                asks.push(Ask {
                    live: c.live.clone(),
                    id: c.id.clone(),
                    day,
                    daily: daily.map_or(-1, |m| m.0),
                    total: total.map_or(-1, |m| m.0),
                });
            }
        }
        if !spends.is_empty() {
            fleet_spend(&fleet, budgets, &spends).await;
        }
        if !asks.is_empty() {
            balance += take_leases(&fleet, budgets, &asks, &mut held).await;
        }
        fleet.metrics.lease_balance.set(balance);
        // Campaigns gone from the snapshot give back what they held.
        let gone: Vec<Arc<str>> = (held.keys())
            .filter(|id| snap.by_id(id).is_none())
            .cloned()
            .collect();
        for id in gone {
            held.remove(&id);
            let live = app.delivery.registry.get(&id);
            if let Some(l) = budgets.lease(&live) {
                let (today, _) = app.ledger.spent(&id, l.day);
                let unused = l.left(today, budgets.reserved(&live, now));
                budgets.set_lease(&live, None);
                give_back(&fleet, &id, Some(l.day), unused).await;
            }
        }
    }
}

/// Asks for one slice per campaign in `asks`, in one pipeline (each script atomic on
/// its own), and adds what was granted to the leases. Returns the micros granted.
async fn take_leases(
    fleet: &Fleet,
    budgets: &crate::delivery::budget::Budgets,
    asks: &[Ask],
    held: &mut HashMap<Arc<str>, Held>,
) -> i64 {
    let mut pipe = redis::pipe();
    for a in asks {
        pipe.cmd("EVAL")
            .arg(LEASE)
            .arg(2)
            .arg(fleet.key(&format!("budget:{}:day:{}", a.id, a.day)))
            .arg(fleet.key(&format!("budget:{}:total", a.id)))
            .arg(a.daily)
            .arg(a.total)
            .arg(fleet.settings.lease_percent)
            .arg(fleet.settings.lease_min_micros)
            .arg(DAY_KEY_TTL_SECS);
    }
    let grants: Vec<(i64, i64)> = match fleet.conn.pipeline(&pipe).await {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(error = %e, campaigns = asks.len(), "cannot top up budget leases");
            return 0;
        }
    };
    let mut total = 0;
    for (a, (granted, _)) in asks.iter().zip(grants) {
        let h = held.entry(a.id.clone()).or_default();
        if granted <= 0 {
            h.quiet_until = Some(Instant::now() + RETRY_SPENT);
            continue;
        }
        // Only this task writes leases; the grant adds to what is there now.
        if let Some(mut l) = budgets.lease(&a.live).filter(|l| l.day == a.day) {
            l.granted += granted;
            budgets.set_lease(&a.live, Some(l));
        }
        h.slice = granted;
        h.quiet_until = None;
        fleet.metrics.lease_refills.inc();
        total += granted;
    }
    total
}

/// Gives back every lease's unused part (reservations kept): a graceful stop.
pub async fn give_back_all(fleet: &Fleet, app: &App) {
    let now = app.clock.now_ms();
    let budgets = &app.delivery.budgets;
    for (id, live) in app.delivery.registry.all() {
        let Some(l) = budgets.lease(&live) else {
            continue;
        };
        let (today, _) = app.ledger.spent(&id, l.day);
        let unused = l.left(today, budgets.reserved(&live, now));
        budgets.set_lease(&live, None);
        give_back(fleet, &id, Some(l.day), unused).await;
    }
}

/// Returns `amount` to the campaign's total and, for a day still counted, to the day.
async fn give_back(fleet: &Fleet, campaign: &str, day: Option<i32>, amount: i64) {
    if amount <= 0 {
        return;
    }
    let mut pipe = redis::pipe();
    pipe.cmd("DECRBY")
        .arg(fleet.key(&format!("budget:{campaign}:total")))
        .arg(amount)
        .ignore();
    if let Some(day) = day {
        pipe.cmd("DECRBY")
            .arg(fleet.key(&format!("budget:{campaign}:day:{day}")))
            .arg(amount)
            .ignore();
    }
    if let Err(e) = fleet.conn.pipeline::<()>(&pipe).await {
        tracing::warn!(error = %e, campaign, micros = amount, "could not give back an unused budget lease");
    }
}

/// Publishes this node's spend today for each campaign in `spends` and notes the
/// other nodes' sum in its lease (even pacing), in one pipeline.
async fn fleet_spend(
    fleet: &Fleet,
    budgets: &crate::delivery::budget::Budgets,
    spends: &[(Arc<crate::delivery::CampaignLive>, Arc<str>, i32, i64)],
) {
    let mut pipe = redis::pipe();
    for (_, id, day, mine) in spends {
        let key = fleet.key(&format!("spend:{id}:day:{day}"));
        pipe.cmd("HSET")
            .arg(&key)
            .arg(fleet.node)
            .arg(*mine)
            .ignore();
        pipe.cmd("EXPIRE").arg(&key).arg(DAY_KEY_TTL_SECS).ignore();
        pipe.cmd("HGETALL").arg(&key);
    }
    let all: Vec<HashMap<u64, i64>> = match fleet.conn.pipeline(&pipe).await {
        Ok(all) => all,
        Err(e) => {
            tracing::debug!(error = %e, "cannot share this node's spend");
            return;
        }
    };
    for ((live, _, day, _), by_node) in spends.iter().zip(all) {
        let others = (by_node.iter())
            .filter(|(node, _)| **node != fleet.node)
            .map(|(_, v)| *v)
            .sum();
        if let Some(mut l) = budgets.lease(live).filter(|l| l.day == *day) {
            l.others_today = others;
            budgets.set_lease(live, Some(l));
        }
    }
}
