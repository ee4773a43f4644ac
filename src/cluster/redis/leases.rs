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
//! Leases are taken lazily: a campaign joins this node's leases when a decision wanted
//! to serve it and found no lease for the day, so the node's work (and Redis's) grows
//! with the campaigns it serves, not with the catalogue; that first decision, and those
//! until the next round, go without the campaign. A task tops the held leases up every
//! `lease_interval_ms` (in pipelines of at most 500 scripts, sent by their hash), as soon
//! as less than half a slice is left, so a busy node does not run dry between two
//! ticks; it gives back
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
//! its own when it changed, and reads the others' back, every few ticks) with the
//! day's elapsed share.

use super::{Fleet, RedisError};
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
/// Publish this node's spend and read the fleet's every so many rounds.
const SPEND_EVERY: u32 = 10;
/// Look over every held lease (campaigns gone, days over) every so many rounds.
const SWEEP_EVERY: u32 = 50;
/// Lease scripts per pipeline: a burst (a node's first decisions want every campaign
/// they match) goes out in pieces that each answer well within the timeout.
const ASKS_PER_PIPELINE: usize = 500;
/// Campaigns looked at between two yields to the runtime: a round over tens of
/// thousands of campaigns must not hold a worker thread (and the decisions queued on
/// it) for tens of milliseconds.
const YIELD_EVERY: usize = 256;

/// What the task remembers per campaign it keeps a lease for.
#[derive(Default)]
struct Held {
    /// Don't ask again before this (the budget was committed).
    quiet_until: Option<Instant>,
    /// This node's spend today as last published (day, micros): unchanged spend is
    /// not written again.
    published: Option<(i32, i64)>,
}

/// A lease to ask the fleet for.
struct Ask {
    live: Arc<crate::delivery::CampaignLive>,
    id: Arc<str>,
    day: i32,
    daily: i64,
    total: i64,
}

/// One campaign's spend to share with the fleet.
struct Spend {
    live: Arc<crate::delivery::CampaignLive>,
    id: Arc<str>,
    day: i32,
    /// This node's spend today, and whether it changed since it was last published.
    mine: i64,
    changed: bool,
}

/// Keeps the leases of the campaigns this node serves topped up, one round per
/// interval. The decisions queue what needs attention (see
/// [`crate::delivery::budget`]): a campaign they wanted without a lease, or whose lease
/// fell below its low-water mark, and the campaigns whose spend is to be shared. So a
/// round costs what the node's traffic asks of it, whatever the size of the catalogue;
/// only a sweep every [`SWEEP_EVERY`] rounds looks over every lease held, to give back
/// the leases of campaigns gone and of days over. Redis is asked in pipelines (lease
/// scripts by their hash), not one round trip per campaign.
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
        let now = app.clock.now_ms();
        let snap = app.snapshot.load_full();
        let budgets = &app.delivery.budgets;

        let mut asks = Vec::new();
        for (i, id) in budgets.take_wanted().into_iter().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            let Some(c) = snap.by_id(&id).filter(|c| c.doc.budget.is_limited()) else {
                // Gone, or no longer budgeted: nothing to lease.
                held.remove(&id);
                let live = app.delivery.registry.get(&id);
                release(&fleet, &app, &id, &live, now).await;
                budgets.lease_handled(&live);
                continue;
            };
            let h = held.entry(id.clone()).or_default();
            let (day, _) = pacing::local_day(c.tz, now);
            let (today, _) = app.ledger.spent(&c.id, day);
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
                        low_water: 0,
                    };
                    budgets.set_lease(&c.live, Some(fresh));
                    h.quiet_until = None;
                    fresh
                }
            };
            let left = lease.left(today, budgets.reserved(&c.live, now));
            let low =
                lease.granted == 0 || left < lease.low_water.max(1) || budgets.refused(&c.live);
            let quiet = h.quiet_until.is_some_and(|t| Instant::now() < t);
            if low && !quiet {
                let (daily, total) = (c.doc.budget.daily, c.doc.budget.total);
                asks.push(Ask {
                    live: c.live.clone(),
                    id: c.id.clone(),
                    day,
                    daily: daily.map_or(-1, |m| m.0),
                    total: total.map_or(-1, |m| m.0),
                });
            } else {
                budgets.lease_handled(&c.live);
            }
        }
        for chunk in asks.chunks(ASKS_PER_PIPELINE) {
            take_leases(&fleet, budgets, chunk, &mut held).await;
        }

        if n % SPEND_EVERY == 0 {
            let touched = budgets.take_touched(|id| snap.by_id(id).map(|c| c.live.clone()));
            let mut spends = Vec::new();
            for (i, id) in touched.into_iter().enumerate() {
                if i % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
                let (Some(c), Some(h)) = (snap.by_id(&id), held.get_mut(&id)) else {
                    continue;
                };
                let (day, _) = pacing::local_day(c.tz, now);
                let (today, _) = app.ledger.spent(&c.id, day);
                let changed = h.published != Some((day, today));
                h.published = Some((day, today));
                spends.push(Spend {
                    live: c.live.clone(),
                    id,
                    day,
                    mine: today,
                    changed,
                });
            }
            for chunk in spends.chunks(ASKS_PER_PIPELINE) {
                if !fleet_spend(&fleet, budgets, chunk).await {
                    // Not published: write them again next time.
                    for s in chunk {
                        if let Some(h) = held.get_mut(&s.id) {
                            h.published = None;
                        }
                    }
                }
            }
        }

        if n % SWEEP_EVERY == 0 {
            sweep(&fleet, &app, &snap, &mut held, now).await;
        }
        fleet.metrics.leases_held.set(held.len() as i64);
    }
}

/// Looks over every lease held: a campaign gone or no longer budgeted, or whose lease
/// is for a day that is over, gives back what it did not use (and is leased again
/// when a decision wants it); sets the balance gauge.
async fn sweep(
    fleet: &Fleet,
    app: &App,
    snap: &crate::index::Snapshot,
    held: &mut HashMap<Arc<str>, Held>,
    now: i64,
) {
    let budgets = &app.delivery.budgets;
    let mut balance = 0;
    let mut done = Vec::new();
    let ids: Vec<Arc<str>> = held.keys().cloned().collect();
    for (i, id) in ids.iter().enumerate() {
        if i % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let current = snap.by_id(id).filter(|c| c.doc.budget.is_limited());
        let Some(c) = current else {
            done.push((id.clone(), app.delivery.registry.get(id)));
            continue;
        };
        let (day, _) = pacing::local_day(c.tz, now);
        match budgets.lease(&c.live) {
            Some(l) if l.day == day => {
                let (today, _) = app.ledger.spent(id, day);
                balance += l.left(today, budgets.reserved(&c.live, now)).max(0);
            }
            _ => done.push((id.clone(), c.live.clone())),
        }
    }
    for (id, live) in done {
        held.remove(&id);
        release(fleet, app, &id, &live, now).await;
    }
    fleet.metrics.lease_balance.set(balance);
}

/// Drops the campaign's lease, giving back what it did not use: to the day and the
/// total while the day lasts, to the total only once it is over.
async fn release(
    fleet: &Fleet,
    app: &App,
    id: &str,
    live: &crate::delivery::CampaignLive,
    now: i64,
) {
    let budgets = &app.delivery.budgets;
    let Some(l) = budgets.lease(live) else {
        return;
    };
    let (today, _) = app.ledger.spent(id, l.day);
    let unused = l.left(today, budgets.reserved(live, now));
    budgets.set_lease(live, None);
    let current_day = app
        .snapshot
        .load()
        .by_id(id)
        .map(|c| pacing::local_day(c.tz, now).0);
    let day = (current_day.is_none() || current_day == Some(l.day)).then_some(l.day);
    give_back(fleet, id, day, unused).await;
}

/// Asks for one slice per campaign in `asks`, in one pipeline (each script atomic on
/// its own), and adds what was granted to the leases; each campaign may be queued
/// again afterwards.
async fn take_leases(
    fleet: &Fleet,
    budgets: &crate::delivery::budget::Budgets,
    asks: &[Ask],
    held: &mut HashMap<Arc<str>, Held>,
) {
    let script = redis::Script::new(LEASE);
    let mut pipe = redis::pipe();
    for a in asks {
        // By hash: the script is sent once, not with every ask.
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(2)
            .arg(fleet.key(&format!("budget:{}:day:{}", a.id, a.day)))
            .arg(fleet.key(&format!("budget:{}:total", a.id)))
            .arg(a.daily)
            .arg(a.total)
            .arg(fleet.settings.lease_percent)
            .arg(fleet.settings.lease_min_micros)
            .arg(DAY_KEY_TTL_SECS);
    }
    let mut grants = fleet.conn.pipeline::<Vec<(i64, i64)>>(&pipe).await;
    if let Err(RedisError::Redis(e)) = &grants
        && e.kind() == redis::ErrorKind::NoScriptError
    {
        // First use, or Redis restarted: load the script and ask again (a refused
        // EVALSHA changed nothing).
        let load = fleet
            .conn
            .query::<String>(redis::cmd("SCRIPT").arg("LOAD").arg(LEASE))
            .await;
        grants = match load {
            Ok(_) => fleet.conn.pipeline(&pipe).await,
            Err(e) => Err(e),
        };
    }
    let grants = match grants {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(error = %e, campaigns = asks.len(), "cannot top up budget leases");
            // The next decision that wants one of them queues it again.
            for a in asks {
                budgets.lease_handled(&a.live);
            }
            return;
        }
    };
    for (a, (granted, _)) in asks.iter().zip(grants) {
        let h = held.entry(a.id.clone()).or_default();
        if granted <= 0 {
            h.quiet_until = Some(Instant::now() + RETRY_SPENT);
        } else if let Some(mut l) = budgets.lease(&a.live).filter(|l| l.day == a.day) {
            // Only this task writes leases; the grant adds to what is there now.
            l.granted += granted;
            l.low_water = granted / 2;
            budgets.set_lease(&a.live, Some(l));
            h.quiet_until = None;
            fleet.metrics.lease_refills.inc();
        }
        budgets.lease_handled(&a.live);
    }
}

/// Gives back every lease's unused part (reservations kept): a graceful stop.
pub async fn give_back_all(fleet: &Fleet, app: &App) {
    let now = app.clock.now_ms();
    for (id, live) in app.delivery.registry.all() {
        release(fleet, app, &id, &live, now).await;
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

/// Publishes this node's spend today for each campaign in `spends` whose spend
/// changed, and notes the other nodes' sum in its lease (even pacing), in one
/// pipeline. False when Redis did not answer.
async fn fleet_spend(
    fleet: &Fleet,
    budgets: &crate::delivery::budget::Budgets,
    spends: &[Spend],
) -> bool {
    let mut pipe = redis::pipe();
    for s in spends {
        let key = fleet.key(&format!("spend:{}:day:{}", s.id, s.day));
        if s.changed {
            pipe.cmd("HSET")
                .arg(&key)
                .arg(fleet.node)
                .arg(s.mine)
                .ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(DAY_KEY_TTL_SECS).ignore();
        }
        pipe.cmd("HGETALL").arg(&key);
    }
    let all: Vec<HashMap<u64, i64>> = match fleet.conn.pipeline(&pipe).await {
        Ok(all) => all,
        Err(e) => {
            tracing::debug!(error = %e, "cannot share this node's spend");
            return false;
        }
    };
    for (s, by_node) in spends.iter().zip(all) {
        let others = (by_node.iter())
            .filter(|(node, _)| **node != fleet.node)
            .map(|(_, v)| *v)
            .sum();
        if let Some(mut l) = budgets.lease(&s.live).filter(|l| l.day == s.day) {
            l.others_today = others;
            budgets.set_lease(&s.live, Some(l));
        }
    }
    true
}
