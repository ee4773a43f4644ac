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
//! This task tops leases up every `sync_interval_ms`, as soon as less than half a
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

pub async fn keep(fleet: Arc<Fleet>, app: Weak<App>) {
    let script = redis::Script::new(LEASE);
    let mut held: HashMap<Arc<str>, Held> = HashMap::new();
    let mut tick = tokio::time::interval(fleet.interval().max(Duration::from_millis(5)));
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
        let now = app.clock.now_ms();
        let snap = app.snapshot.load_full();
        let budgets = &app.delivery.budgets;
        let mut balance = 0;
        for c in snap.campaigns() {
            let (daily, total) = (c.doc.budget.daily, c.doc.budget.total);
            if daily.is_none() && total.is_none() {
                continue;
            }
            let (day, _) = pacing::local_day(c.tz, now);
            let (today, _) = app.ledger.spent(&c.id, day);
            let reserved = budgets.reserved(&c.live, now);
            let h = held.entry(c.id.clone()).or_default();
            let mut lease = match budgets.lease(&c.live) {
                Some(l) if l.day == day => l,
                old => {
                    if let Some(old) = old {
                        // A new day: what yesterday's lease left goes back to the total.
                        let (then, _) = app.ledger.spent(&c.id, old.day);
                        let unused = old.left(then, 0);
                        give_back(&fleet, &c.id, None, unused).await;
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
            if n % SPEND_EVERY == 1 {
                if let Some(others) = fleet_spend(&fleet, &c.id, day, today).await {
                    lease.others_today = others;
                    budgets.set_lease(&c.live, Some(lease));
                }
            }
            let left = lease.left(today, reserved);
            balance += left.max(0);
            let low = h.slice == 0 || left < h.slice / 2;
            let quiet = h.quiet_until.is_some_and(|t| Instant::now() < t);
            if !low || quiet {
                continue;
            }
            let mut inv = script.prepare_invoke();
            inv.key(fleet.key(&format!("budget:{}:day:{day}", c.id)))
                .key(fleet.key(&format!("budget:{}:total", c.id)))
                .arg(daily.map_or(-1, |m| m.0))
                .arg(total.map_or(-1, |m| m.0))
                .arg(fleet.settings.lease_percent)
                .arg(fleet.settings.lease_min_micros)
                .arg(DAY_KEY_TTL_SECS);
            match fleet.conn.script::<(i64, i64)>(&inv).await {
                Ok((granted, _)) if granted > 0 => {
                    // Re-read: only this task writes leases, but the spend read above
                    // may be a tick old; the grant adds to whatever is there now.
                    let mut l = budgets.lease(&c.live).unwrap_or(lease);
                    l.granted += granted;
                    budgets.set_lease(&c.live, Some(l));
                    h.slice = granted;
                    h.quiet_until = None;
                    fleet.metrics.lease_refills.inc();
                    balance += granted;
                }
                Ok(_) => h.quiet_until = Some(Instant::now() + RETRY_SPENT),
                Err(e) => {
                    tracing::debug!(error = %e, campaign = %c.id, "cannot top up a budget lease")
                }
            }
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

/// Publishes this node's spend today and returns the other nodes' sum.
async fn fleet_spend(fleet: &Fleet, campaign: &str, day: i32, mine: i64) -> Option<i64> {
    let key = fleet.key(&format!("spend:{campaign}:day:{day}"));
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(&key)
        .arg(fleet.node)
        .arg(mine)
        .ignore();
    pipe.cmd("EXPIRE").arg(&key).arg(DAY_KEY_TTL_SECS).ignore();
    pipe.cmd("HGETALL").arg(&key);
    let (all,): (HashMap<u64, i64>,) = fleet.conn.pipeline(&pipe).await.ok()?;
    Some(
        all.iter()
            .filter(|(node, _)| **node != fleet.node)
            .map(|(_, v)| *v)
            .sum(),
    )
}
