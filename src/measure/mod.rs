//! Measurement: closed-loop attribution and incrementality from the exposure log alone
//! (`aftercart report`, and the rows `GET /v1/campaigns/{id}/report` serves).
//!
//! The log is read twice, both times streaming:
//!
//! 1. `links`: the identity graph is rebuilt from every record that linked
//!    identifiers, so attribution uses the *final* resolution (an in-store purchase by a
//!    loyalty id reaches an online exposure by an e-mail hash once any event carried
//!    both, even an event logged after the purchase). It also notes the few facts the
//!    second pass needs ahead of time: orders that will be refunded, in-unit purchases,
//!    erasures, the longest delay with which a conversion reached the log.
//! 2. `attribution`: delivery is counted, exposures are remembered per profile for as
//!    long as a conversion could still be credited to them, conversions are attributed
//!    item by item, holdout groups are followed.
//!
//! Memory grows with profiles and identifiers and with the exposures inside the open
//! windows, never with the length of the log. [`wire`] reads records without
//! allocating, [`stats`] has the interval methods, [`model`] the report's fields,
//! [`format`] and [`html`] print it, [`progress`] draws the progress bar. Each pass
//! reads and decodes the log on a second thread (`stream`, `packed`), so that reading
//! overlaps the work.
//!
//! ```no_run
//! use aftercart::measure::{self, Options};
//! let report = measure::report("data".as_ref(), &Options::default())?;
//! if let Some(row) = report.campaign("cmp-streamly-trial") {
//!     println!("ROAS {:?} (online only {:?})", row.roas, row.roas_online_only);
//! }
//! # Ok::<(), measure::ReportError>(())
//! ```

mod attribution;
pub mod format;
pub mod html;
mod links;
pub mod model;
mod packed;
pub mod progress;
pub mod stats;
mod stream;
mod tally;
pub mod wire;

#[cfg(test)]
mod tests;

pub use model::{CampaignRow, Report};

use crate::exposure::storage::LogError;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

/// The default click window: 14 days.
pub const DEFAULT_CLICK_WINDOW_MS: i64 = 14 * DAY_MS;
/// The default view window: 1 day.
pub const DEFAULT_VIEW_WINDOW_MS: i64 = DAY_MS;
const DAY_MS: i64 = 86_400_000;

/// What to report on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Only this campaign's row (the totals then add up that row alone).
    pub campaign: Option<String>,
    /// Inclusive start (ms since the epoch): delivery received and purchases made from
    /// then on count.
    pub from_ms: Option<i64>,
    /// Exclusive end (ms).
    pub to_ms: Option<i64>,
    /// How long after a click a purchase is credited to it.
    pub click_window_ms: i64,
    /// How long after an impression (without a click) a purchase is credited to it.
    pub view_window_ms: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            campaign: None,
            from_ms: None,
            to_ms: None,
            click_window_ms: DEFAULT_CLICK_WINDOW_MS,
            view_window_ms: DEFAULT_VIEW_WINDOW_MS,
        }
    }
}

impl Options {
    /// Whether `ms` falls inside `[from, to)`.
    pub fn in_period(&self, ms: i64) -> bool {
        self.from_ms.is_none_or(|f| ms >= f) && self.to_ms.is_none_or(|t| ms < t)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the exposure log: {0}")]
    Log(#[from] LogError),
    #[error("unreadable record at offset {offset}: {reason}")]
    Record { offset: u64, reason: String },
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot start the reader thread: {0}")]
    Thread(std::io::Error),
}

/// How far a pass has got, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 1 (linking identities) or 2 (attribution).
    pub pass: u8,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub records: u64,
}

/// The report over the log in `data/log` (`data` is the server's data folder).
pub fn report(data: &Path, options: &Options) -> Result<Report, ReportError> {
    report_with_progress(data, options, &mut |_| {})
}

/// One campaign's row: what `GET /v1/campaigns/{id}/report` answers. `None` when the
/// log holds nothing of the campaign.
pub fn campaign_report(
    data: &Path,
    campaign: &str,
    options: &Options,
) -> Result<Option<CampaignRow>, ReportError> {
    let options = Options {
        campaign: Some(campaign.to_string()),
        ..options.clone()
    };
    Ok(report(data, &options)?.campaign(campaign).cloned())
}

/// [`report`], calling `progress` every few thousand records.
pub fn report_with_progress(
    data: &Path,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, ReportError> {
    if options.click_window_ms < 0 || options.view_window_ms < 0 {
        return Err(ReportError::Options("windows cannot be negative".into()));
    }
    if let (Some(f), Some(t)) = (options.from_ms, options.to_ms)
        && f >= t
    {
        return Err(ReportError::Options("--from must be before --to".into()));
    }
    let dir = data.join("log");
    let links = links::Links::build(&dir, progress)?;
    attribution::Attribution::new(options, &links).run(&dir, progress)
}

/// Parses a window such as `14d`, `36h`, `90m`, `30s` or `2w` into milliseconds.
pub fn parse_window(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, like 14d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return Err(format!("{s:?}: the unit must be s, m, h, d or w")),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms <= 3_650 * DAY_MS)
        .ok_or_else(|| format!("{s:?}: at most ten years"))
}

/// Parses a period bound: RFC 3339 (`2026-11-21T18:00:00Z`) or a date (`2026-11-21`,
/// midnight UTC). With `end_of_day`, a date means the midnight after it, so that
/// `--to 2026-11-30` includes the 30th.
pub fn parse_time(s: &str, end_of_day: bool) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?}: expected RFC 3339 or YYYY-MM-DD"))?;
    let date = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| format!("{s:?}: out of range"))?
    } else {
        date
    };
    Ok(date
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis())
}

/// A hasher for the report's maps: keys are profile ids (keyed HMAC output, so uniform
/// and unpredictable without the deployment's key), campaign ids and placements (set by
/// admins). Seeded at random per report, as every map over outside keys in this crate,
/// and much cheaper than SipHash, which showed in profiles at a million records a
/// second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seeded(u64);

impl Default for Seeded {
    fn default() -> Seeded {
        Seeded(rand::random())
    }
}

impl BuildHasher for Seeded {
    type Hasher = SeededHasher;
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher(self.0)
    }
}

pub(crate) struct SeededHasher(u64);

/// The splitmix64 finaliser: every input bit reaches every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hasher for SeededHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0 ^ u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0 ^ u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = mix(self.0 ^ n as u64 ^ ((n >> 64) as u64).rotate_left(32));
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0 ^ n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Seeded>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, Seeded>;

/// The key of an order: its channel and id (orders are unique per channel).
pub(crate) fn order_key(channel: crate::campaign::Channel, order: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(order, channel as u64 + 1)
}

/// A 64-bit key for a transaction or order id, for "is this the order that triggered the
/// decision" (0 is kept for "none").
pub(crate) fn txn_key(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id) | 1
}
