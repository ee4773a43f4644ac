//! Live stock per SKU and location, for product offers and in-unit purchases.
//!
//! Two sources make up what is available at a location:
//!
//! - **reports** from the retailer's systems (`PUT /v1/inventory`): the quantity as of
//!   a time. A report older than the last one applied for its SKU and location is
//!   ignored, so a delayed feed cannot undo a newer one.
//! - **sales** made inside the ad unit (`purchase` records in the exposure log). A sale
//!   after a report's `as_of` is subtracted from it: the feed has not seen it yet, so
//!   it cannot bring the sold stock back. A sale at or before `as_of` is already in
//!   the reported figure.
//!
//! Reports are durable in their own journal (`DATA/inventory/`, the same framed
//! segments as the exposure log, fsynced before the `200`) with a periodic snapshot;
//! sales are durable in the exposure log, and the ledger's checkpoint carries the ones
//! not yet covered by a report. Both are idempotent level-sets, so replaying either
//! over a snapshot is harmless.
//!
//! A seed feed (config `inventory_seed`) gives stock to the SKUs and locations never
//! reported, at start; once reported, a seed never touches them again.
//!
//! A SKU never reported counts as in stock everywhere (the retailer does not manage it
//! here) but is not purchasable. A SKU reported somewhere but not at a location is out
//! of stock there: the retailer manages it, and reported none.
//!
//! In a fleet whose stock is shared (see [`crate::cluster`]), the shared store holds
//! the levels and purchases take from it; decisions then read the copy of the fleet's
//! levels set by [`Inventory::set_fleet_levels`] instead of the local reports and sales.

use crate::exposure::storage::{
    Faults, LogError, LogReader, SegmentWriter, delete_segments_before, encode_frame,
};
use crate::validation::{Problems, Reader, expect_integer, index};
use chrono::DateTime;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The location of online and app orders.
pub const ONLINE: &str = "online";

/// Journal segments are small so a snapshot lets old ones go soon.
const JOURNAL_SEGMENT_BYTES: u64 = 8 << 20;
/// Updates per journal frame (a frame holds at most 16 MiB).
const UPDATES_PER_FRAME: usize = 20_000;

/// The most lines one feed request may carry.
pub const MAX_LINES: usize = 100_000;
/// The longest SKU or location.
const MAX_KEY: usize = 128;
/// How far ahead of this server's clock an `as_of` may be (clock skew).
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// Reads a stock feed (the body of `PUT /v1/inventory`, or a seed file), every
/// problem with its path; a line without `as_of` is stock as of `now_ms`.
pub fn parse_feed(value: &Value, now_ms: i64) -> Result<Vec<StockUpdate>, Problems> {
    let mut p = Problems::default();
    let Value::Array(lines) = value else {
        p.push("", "expected an array of stock lines");
        return Err(p);
    };
    if lines.is_empty() || lines.len() > MAX_LINES {
        p.push("", format!("a feed holds 1 to {MAX_LINES} lines"));
        return Err(p);
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let path = index("", i);
        let Some(mut r) = Reader::object(line, &path, &mut p) else {
            continue;
        };
        let key = |r: &mut Reader, field: &'static str, p: &mut Problems| {
            let v = r.required_string(field, p)?;
            if v.is_empty() || v.len() > MAX_KEY {
                p.push(
                    r.field_path(field),
                    format!("must be 1 to {MAX_KEY} characters"),
                );
                return None;
            }
            Some(v.to_string())
        };
        let sku = key(&mut r, "sku", &mut p);
        let location = key(&mut r, "location", &mut p);
        let quantity = r
            .required("quantity", &mut p)
            .and_then(|v| expect_integer(v, &r.field_path("quantity"), 0..=1_000_000_000, &mut p));
        let as_of = match r.string("as_of", &mut p) {
            None => Some(now_ms),
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) if t.timestamp_millis() <= now_ms + MAX_FUTURE_MS => {
                    Some(t.timestamp_millis())
                }
                Ok(_) => {
                    p.push(r.field_path("as_of"), "is in the future");
                    None
                }
                Err(_) => {
                    p.push(r.field_path("as_of"), "expected an RFC 3339 timestamp");
                    None
                }
            },
        };
        r.finish(&mut p);
        if let (Some(sku), Some(location), Some(quantity), Some(as_of)) =
            (sku, location, quantity, as_of)
        {
            out.push(StockUpdate {
                sku,
                location,
                quantity,
                as_of,
            });
        }
    }
    if p.is_empty() { Ok(out) } else { Err(p) }
}

/// One line of a feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockUpdate {
    pub sku: String,
    pub location: String,
    pub quantity: i64,
    /// Milliseconds since the epoch.
    pub as_of: i64,
}

/// What a product creative may show at a location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Never reported: offered, but not purchasable in the unit.
    Unmanaged,
    InStock(i64),
    OutOfStock,
}

impl Availability {
    pub fn can_offer(self) -> bool {
        !matches!(self, Availability::OutOfStock)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Stock {
    reported: i64,
    /// `i64::MIN` until a report arrives (sales replayed before their report).
    as_of: i64,
    /// In-unit sales after `as_of`: (ms, quantity).
    sales: Vec<(i64, u32)>,
}

impl Stock {
    fn available(&self) -> i64 {
        let sold: i64 = self.sales.iter().map(|&(_, q)| i64::from(q)).sum();
        self.reported - sold
    }
}

/// Why stock could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    /// The SKU has no reported stock at this location.
    Unmanaged,
    /// Fewer than asked for are left.
    OutOfStock { left: i64 },
}

/// The journal's snapshot: every report, and the journal offset it covers.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    offset: u64,
    reports: Vec<StockUpdate>,
}

/// The fleet's stock levels: SKU → location → units left.
pub type FleetLevels = HashMap<Box<str>, HashMap<Box<str>, i64>>;

pub struct Inventory {
    /// SKU → location → stock. Per-SKU entries so that one entry lock makes a purchase
    /// atomic; SKUs come from clients, so the map keeps DashMap's seeded hasher.
    skus: DashMap<Box<str>, HashMap<Box<str>, Stock>>,
    journal: Mutex<Journal>,
    /// With shared stock: the fleet's levels as last read, which availability follows.
    fleet: arc_swap::ArcSwapOption<FleetLevels>,
}

struct Journal {
    dir: PathBuf,
    writer: SegmentWriter,
}

impl Inventory {
    /// Opens the journal in `dir`, loading its snapshot and replaying what follows it.
    pub fn open(dir: &Path, faults: Arc<Faults>) -> Result<Inventory, LogError> {
        let (writer, recovery) = SegmentWriter::open(dir, JOURNAL_SEGMENT_BYTES, faults)?;
        if let Some(at) = recovery.truncated_at {
            tracing::warn!(offset = at, "inventory journal: cut a torn tail");
        }
        let inventory = Inventory {
            skus: DashMap::new(),
            journal: Mutex::new(Journal {
                dir: dir.to_path_buf(),
                writer,
            }),
            fleet: arc_swap::ArcSwapOption::empty(),
        };
        let mut from = 0;
        match std::fs::read(snapshot_path(dir)) {
            Ok(bytes) => {
                let snap: Snapshot = rmp_serde::from_slice(&bytes).map_err(|e| LogError::Io {
                    path: snapshot_path(dir),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?;
                inventory.apply_reports(&snap.reports);
                from = snap.offset;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LogError::Io {
                    path: snapshot_path(dir),
                    source,
                });
            }
        }
        let mut reader = LogReader::open(dir)?;
        let start = from.max(reader.oldest_offset()?);
        reader.seek(start)?;
        let mut payload = Vec::new();
        while reader.next_into(&mut payload)?.is_some() {
            match rmp_serde::from_slice::<Vec<StockUpdate>>(&payload) {
                Ok(updates) => {
                    inventory.apply_reports(&updates);
                }
                Err(e) => {
                    tracing::error!(error = %e, "inventory journal: unreadable frame skipped")
                }
            }
        }
        Ok(inventory)
    }

    /// Makes `updates` durable (journal, fsync) and live. Returns how many were newer
    /// than what was known (the others are ignored).
    pub fn report(&self, updates: &[StockUpdate]) -> std::io::Result<usize> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let mut frames = Vec::new();
        for chunk in updates.chunks(UPDATES_PER_FRAME) {
            let payload = rmp_serde::to_vec(chunk).map_err(std::io::Error::other)?;
            encode_frame(&payload, &mut frames);
        }
        journal.writer.append(&frames)?;
        journal.writer.sync()?;
        // Applied under the journal lock, so memory and journal see reports in one order.
        Ok(self.apply_reports(updates))
    }

    /// Applies the lines of a seed feed whose SKU and location were never reported,
    /// and skips the others: a seed gives stock a start, it never overrides what the
    /// retailer reported or undoes what was sold since. Returns how many it applied.
    pub fn seed(&self, updates: &[StockUpdate]) -> std::io::Result<usize> {
        let fresh: Vec<StockUpdate> = updates
            .iter()
            .filter(|u| {
                let known = self.skus.get(u.sku.as_str()).is_some_and(|locations| {
                    locations
                        .get(u.location.as_str())
                        .is_some_and(|s| s.as_of != i64::MIN)
                });
                !known
            })
            .cloned()
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        self.report(&fresh)
    }

    fn apply_reports(&self, updates: &[StockUpdate]) -> usize {
        let mut applied = 0;
        for u in updates {
            let mut locations = self.skus.entry(u.sku.as_str().into()).or_default();
            let stock = locations
                .entry(u.location.as_str().into())
                .or_insert(Stock {
                    as_of: i64::MIN,
                    ..Stock::default()
                });
            if u.as_of < stock.as_of || (u.as_of == stock.as_of && stock.as_of != i64::MIN) {
                continue;
            }
            stock.reported = u.quantity;
            stock.as_of = u.as_of;
            stock.sales.retain(|&(ms, _)| ms > u.as_of);
            applied += 1;
        }
        applied
    }

    /// Whether the SKU can be offered at `location`, and how many are left.
    pub fn availability(&self, sku: &str, location: &str) -> Availability {
        if let Some(fleet) = &*self.fleet.load() {
            return match fleet.get(sku).map(|l| l.get(location)) {
                None => Availability::Unmanaged,
                Some(Some(&n)) if n > 0 => Availability::InStock(n),
                Some(_) => Availability::OutOfStock,
            };
        }
        if self.skus.is_empty() {
            return Availability::Unmanaged;
        }
        let Some(locations) = self.skus.get(sku) else {
            return Availability::Unmanaged;
        };
        match locations.get(location).map(Stock::available) {
            Some(n) if n > 0 => Availability::InStock(n),
            _ => Availability::OutOfStock,
        }
    }

    /// Replaces the copy of the fleet's levels that availability follows from now on.
    pub fn set_fleet_levels(&self, levels: FleetLevels) {
        self.fleet.store(Some(Arc::new(levels)));
    }

    /// Quantity left per location of a reported SKU (`None` if never reported).
    pub fn by_location(&self, sku: &str) -> Option<Vec<(String, i64, i64)>> {
        let locations = self.skus.get(sku)?;
        let mut out: Vec<_> = (locations.iter())
            .filter(|(_, s)| s.as_of != i64::MIN)
            .map(|(l, s)| (l.to_string(), s.available().max(0), s.as_of))
            .collect();
        out.sort();
        Some(out)
    }

    /// Takes `quantity` at `location` atomically, as a sale at `at_ms`: never more
    /// than is left, whatever runs concurrently. Returns the time the sale is booked
    /// at (after the report's `as_of`, should that be ahead of this server's clock),
    /// which the purchase record must carry so a replay books it the same way.
    pub fn take(
        &self,
        sku: &str,
        location: &str,
        quantity: u32,
        at_ms: i64,
    ) -> Result<i64, TakeError> {
        let mut locations = self.skus.get_mut(sku).ok_or(TakeError::Unmanaged)?;
        let stock = match locations.get_mut(location) {
            Some(s) if s.as_of != i64::MIN => s,
            _ => return Err(TakeError::Unmanaged),
        };
        let left = stock.available();
        if left < i64::from(quantity) {
            return Err(TakeError::OutOfStock { left: left.max(0) });
        }
        let booked = at_ms.max(stock.as_of.saturating_add(1));
        stock.sales.push((booked, quantity));
        Ok(booked)
    }

    /// Undoes a [`Inventory::take`] (booked at `booked_ms`) whose purchase could not
    /// be logged.
    pub fn give_back(&self, sku: &str, location: &str, quantity: u32, booked_ms: i64) {
        if let Some(mut locations) = self.skus.get_mut(sku)
            && let Some(stock) = locations.get_mut(location)
            && let Some(i) = (stock.sales.iter()).rposition(|&s| s == (booked_ms, quantity))
        {
            stock.sales.remove(i);
        }
    }

    /// Records a sale read back from the log (the ledger calls this once per purchase).
    pub fn record_sale(&self, sku: &str, location: &str, quantity: u32, at_ms: i64) {
        let mut locations = self.skus.entry(sku.into()).or_default();
        let stock = locations.entry(location.into()).or_insert(Stock {
            as_of: i64::MIN,
            ..Stock::default()
        });
        if at_ms > stock.as_of {
            stock.sales.push((at_ms, quantity));
        }
    }

    /// Sales not yet covered by a report, for the ledger's checkpoint.
    pub fn sales(&self) -> Vec<(String, String, u32, i64)> {
        let mut out = Vec::new();
        for e in self.skus.iter() {
            for (location, stock) in e.value() {
                for &(ms, q) in &stock.sales {
                    out.push((e.key().to_string(), location.to_string(), q, ms));
                }
            }
        }
        out
    }

    /// Forgets every sale (before the ledger is rebuilt from the whole log).
    pub fn clear_sales(&self) {
        for mut e in self.skus.iter_mut() {
            for stock in e.value_mut().values_mut() {
                stock.sales.clear();
            }
        }
    }

    /// Writes a snapshot of every report and drops the journal segments it covers.
    pub fn snapshot(&self) -> Result<(), LogError> {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let offset = journal.writer.end_offset();
        let mut reports = Vec::new();
        for e in self.skus.iter() {
            for (location, stock) in e.value().iter().filter(|(_, s)| s.as_of != i64::MIN) {
                reports.push(StockUpdate {
                    sku: e.key().to_string(),
                    location: location.to_string(),
                    quantity: stock.reported,
                    as_of: stock.as_of,
                });
            }
        }
        let bytes = rmp_serde::to_vec(&Snapshot { offset, reports }).map_err(|e| LogError::Io {
            path: snapshot_path(&journal.dir),
            source: std::io::Error::other(e),
        })?;
        let path = snapshot_path(&journal.dir);
        crate::secrets::write_atomic(&path, &bytes)
            .map_err(|source| LogError::Io { path, source })?;
        delete_segments_before(&journal.dir, offset)?;
        Ok(())
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(sku: &str, location: &str, quantity: i64, as_of: i64) -> StockUpdate {
        StockUpdate {
            sku: sku.into(),
            location: location.into(),
            quantity,
            as_of,
        }
    }

    fn open(dir: &Path) -> Inventory {
        Inventory::open(&dir.join("inventory"), Arc::new(Faults::default())).unwrap()
    }

    #[test]
    fn a_stale_feed_cannot_bring_back_sold_stock() {
        let dir = tempfile::tempdir().unwrap();
        let inv = open(dir.path());
        assert_eq!(inv.report(&[update("SKU-1", ONLINE, 5, 1_000)]).unwrap(), 1);
        inv.take("SKU-1", ONLINE, 2, 2_000).unwrap();
        assert_eq!(inv.availability("SKU-1", ONLINE), Availability::InStock(3));
        // A feed taken before the sale still says 5: the sale comes off it.
        assert_eq!(inv.report(&[update("SKU-1", ONLINE, 5, 1_500)]).unwrap(), 1);
        assert_eq!(inv.availability("SKU-1", ONLINE), Availability::InStock(3));
        // An older feed is ignored.
        assert_eq!(inv.report(&[update("SKU-1", ONLINE, 50, 900)]).unwrap(), 0);
        assert_eq!(inv.availability("SKU-1", ONLINE), Availability::InStock(3));
        // A feed that saw the sale replaces it.
        inv.report(&[update("SKU-1", ONLINE, 3, 2_500)]).unwrap();
        assert_eq!(inv.availability("SKU-1", ONLINE), Availability::InStock(3));
        assert_eq!(inv.sales(), vec![]);
    }

    #[test]
    fn unreported_skus_are_offered_and_reported_elsewhere_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let inv = open(dir.path());
        assert_eq!(inv.availability("SKU-9", ONLINE), Availability::Unmanaged);
        inv.report(&[update("SKU-1", "store-042", 4, 1)]).unwrap();
        assert_eq!(inv.availability("SKU-1", ONLINE), Availability::OutOfStock);
        assert_eq!(
            inv.availability("SKU-1", "store-042"),
            Availability::InStock(4)
        );
        assert_eq!(inv.take("SKU-1", ONLINE, 1, 5), Err(TakeError::Unmanaged));
        assert_eq!(
            inv.take("SKU-1", "store-042", 5, 5),
            Err(TakeError::OutOfStock { left: 4 })
        );
    }

    #[test]
    fn reports_survive_reopening_with_and_without_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let inv = open(dir.path());
            inv.report(&[update("A", ONLINE, 7, 10), update("B", ONLINE, 1, 10)])
                .unwrap();
            inv.snapshot().unwrap();
            inv.report(&[update("A", ONLINE, 6, 20)]).unwrap();
        }
        let inv = open(dir.path());
        assert_eq!(inv.availability("A", ONLINE), Availability::InStock(6));
        assert_eq!(inv.availability("B", ONLINE), Availability::InStock(1));
        assert_eq!(
            inv.by_location("A"),
            Some(vec![(ONLINE.to_string(), 6, 20)])
        );
    }

    #[test]
    fn concurrent_takes_never_oversell() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Arc::new(open(dir.path()));
        inv.report(&[update("S", ONLINE, 10, 0)]).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let inv = inv.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .filter(|i| inv.take("S", ONLINE, 1, 1 + t * 100 + i).is_ok())
                        .count()
                })
            })
            .collect();
        let sold: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sold, 10);
        assert_eq!(inv.availability("S", ONLINE), Availability::OutOfStock);
    }
}
