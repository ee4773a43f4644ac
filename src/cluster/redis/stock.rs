//! Stock in Redis: purchases on any node take from one level per SKU and location,
//! atomically, so a fleet never sells a unit twice.
//!
//! Per SKU and location a hash holds the last report (`reported`, `as_of`) and the
//! units `sold` since it, and a sorted set holds those sales (member `qty:order`,
//! score the time the sale is booked at). Each change is one Lua script, so it is
//! atomic against every other node:
//!
//! - **take**: refuses unless `reported - sold >= qty`, then adds the sale;
//! - **report** (a feed line): ignored unless newer than the stored `as_of`, as on
//!   one node; drops the sales the report already covers (booked at or before its
//!   `as_of`) and counts the rest, so a stale feed cannot bring back sold stock;
//! - **give back**: removes a sale whose purchase could not be logged.
//!
//! The purchase path waits for Redis (it is not the decision path), at most the
//! configured timeout; decisions read the local copy [`Stock::refresh`] keeps, at
//! most one refresh interval (plus a round trip) old. A stale copy can only offer a
//! product that just sold out, and the purchase then answers `out_of_stock`.

use super::conn::{Conn, RedisError};
use crate::inventory::{FleetLevels, StockUpdate};
use redis::Script;
use std::collections::HashMap;
use std::sync::Arc;

const TAKE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'reported', 'as_of', 'sold')
if not h[1] then return {-1, 0, 0} end
local left = tonumber(h[1]) - tonumber(h[3] or '0')
local qty = tonumber(ARGV[1])
if left < qty then return {0, left, 0} end
local booked = math.max(tonumber(ARGV[2]), tonumber(h[2]) + 1)
redis.call('HINCRBY', KEYS[1], 'sold', qty)
redis.call('ZADD', KEYS[2], booked, ARGV[3])
return {1, left - qty, booked}
";

const REPORT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'as_of')
if cur and tonumber(ARGV[2]) <= tonumber(cur) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local sold = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  sold = sold + tonumber(string.match(m, '^(%d+):'))
end
redis.call('HSET', KEYS[1], 'reported', ARGV[1], 'as_of', ARGV[2], 'sold', string.format('%d', sold))
redis.call('SADD', KEYS[3], ARGV[3])
return 1
";

const GIVE_BACK: &str = r"
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'sold', -tonumber(ARGV[2]))
  return 1
end
return 0
";

/// What a take found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Taken, booked at this time (ms).
    Booked(i64),
    /// Fewer than asked for are left.
    OutOfStock { left: i64 },
    /// The SKU has no reported stock at this location.
    Unmanaged,
}

pub struct Stock {
    conn: Arc<Conn>,
    prefix: String,
    take: Script,
    report: Script,
    give_back: Script,
}

/// Separates SKU and location in the index of keys: a control character, which
/// neither may contain in practice and which no feed line can make ambiguous since
/// the SKU's length leads the key.
const SEP: char = '\u{1f}';

impl Stock {
    pub fn new(conn: Arc<Conn>, prefix: &str) -> Stock {
        Stock {
            conn,
            prefix: prefix.to_string(),
            take: Script::new(TAKE),
            report: Script::new(REPORT),
            give_back: Script::new(GIVE_BACK),
        }
    }

    fn keys(&self, sku: &str, location: &str) -> (String, String) {
        let level = format!("{}stock:{}:{sku}:{location}", self.prefix, sku.len());
        let sales = format!("{level}:sales");
        (level, sales)
    }

    fn index(&self) -> String {
        format!("{}stock:index", self.prefix)
    }

    /// Takes `quantity` at `location` for order `order`, as a sale at `at_ms`.
    pub async fn take(
        &self,
        sku: &str,
        location: &str,
        quantity: u32,
        at_ms: i64,
        order: &str,
    ) -> Result<Taken, RedisError> {
        let (level, sales) = self.keys(sku, location);
        let mut inv = self.take.prepare_invoke();
        inv.key(&level)
            .key(&sales)
            .arg(quantity)
            .arg(at_ms)
            .arg(format!("{quantity}:{order}"));
        let (status, left, booked): (i64, i64, i64) = self.conn.script(&inv).await?;
        Ok(match status {
            1 => Taken::Booked(booked),
            0 => Taken::OutOfStock { left: left.max(0) },
            _ => Taken::Unmanaged,
        })
    }

    /// Undoes a take whose purchase could not be logged.
    pub async fn give_back(
        &self,
        sku: &str,
        location: &str,
        quantity: u32,
        order: &str,
    ) -> Result<(), RedisError> {
        let (level, sales) = self.keys(sku, location);
        let mut inv = self.give_back.prepare_invoke();
        inv.key(&level)
            .key(&sales)
            .arg(format!("{quantity}:{order}"))
            .arg(quantity);
        let _: i64 = self.conn.script(&inv).await?;
        Ok(())
    }

    /// Applies feed lines; returns how many were newer than what Redis held.
    pub async fn report(&self, updates: &[StockUpdate]) -> Result<usize, RedisError> {
        let mut applied = 0;
        for u in updates {
            let (level, sales) = self.keys(&u.sku, &u.location);
            let mut inv = self.report.prepare_invoke();
            inv.key(&level)
                .key(&sales)
                .key(self.index())
                .arg(u.quantity)
                .arg(u.as_of)
                .arg(format!("{}{SEP}{}", u.sku, u.location));
            let n: i64 = self.conn.script(&inv).await?;
            applied += n as usize;
        }
        Ok(applied)
    }

    /// Every level in Redis, for the local copy decisions read.
    pub async fn levels(&self) -> Result<FleetLevels, RedisError> {
        let members: Vec<String> = self
            .conn
            .query(redis::cmd("SMEMBERS").arg(self.index()))
            .await?;
        let mut levels: FleetLevels = HashMap::new();
        for chunk in members.chunks(1_000) {
            let mut pipe = redis::pipe();
            let mut names = Vec::with_capacity(chunk.len());
            for m in chunk {
                let Some((sku, location)) = m.split_once(SEP) else {
                    continue;
                };
                pipe.cmd("HMGET")
                    .arg(self.keys(sku, location).0)
                    .arg("reported")
                    .arg("sold");
                names.push((sku, location));
            }
            let rows: Vec<(Option<i64>, Option<i64>)> = self.conn.pipeline(&pipe).await?;
            for ((sku, location), (reported, sold)) in names.into_iter().zip(rows) {
                if let Some(r) = reported {
                    let left = r - sold.unwrap_or(0);
                    levels
                        .entry(sku.into())
                        .or_default()
                        .insert(location.into(), left);
                }
            }
        }
        Ok(levels)
    }
}
