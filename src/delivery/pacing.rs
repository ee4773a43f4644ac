//! Even pacing: spreading a daily budget over the campaign's day.
//!
//! The target is linear in the day's elapsed share (in the campaign's time zone): by
//! 15:00 an even campaign should have committed about 15/24 of its daily budget. A
//! campaign behind or on the line serves every eligible offer, so quiet night hours
//! are made up in the busy ones; a campaign ahead of it serves each offer with a
//! probability that falls smoothly from 1 to 0 over [`SLACK`] of the daily budget.
//! The smooth ramp is what avoids the sawtooth of a hard on/off switch: a small lead
//! only thins the traffic a little, and the spend curve hugs the line.
//!
//! The coin is an xxh3 hash of the decision and campaign, not a random draw, so the
//! same decision replays the same way and tests are deterministic.

use chrono::{TimeZone, Timelike};
use chrono_tz::Tz;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How far ahead of the line (as a share of the daily budget) a campaign may run
/// before it stops serving entirely. Small enough to keep the curve within a percent
/// or two of the line, large enough that the throttle is a ramp and not a switch.
pub const SLACK: f64 = 0.01;

/// A head start on the line (share of the daily budget), so a campaign is not
/// throttled by the first few offers just after midnight.
pub const LEAD: f64 = 0.002;

/// The campaign's local day at `ms`: (days since the epoch, elapsed share of the day).
pub fn local_day(tz: Tz, ms: i64) -> (i32, f64) {
    let Some(t) = tz.timestamp_millis_opt(ms).single() else {
        return (0, 0.0);
    };
    let day = (t.date_naive() - chrono::NaiveDate::default()).num_days() as i32;
    let seconds = f64::from(t.num_seconds_from_midnight()) + f64::from(t.nanosecond()) / 1e9;
    (day, (seconds / 86_400.0).clamp(0.0, 1.0))
}

/// The probability of serving one more offer for an even campaign that has committed
/// `committed` micros (charged plus reserved) of `daily` with `elapsed` of its day gone.
pub fn serve_probability(committed: i64, daily: i64, elapsed: f64) -> f64 {
    if daily <= 0 {
        return 0.0;
    }
    let target = (elapsed + LEAD).min(1.0);
    let ahead = committed as f64 / daily as f64 - target;
    if ahead <= 0.0 {
        1.0
    } else {
        (1.0 - ahead / SLACK).max(0.0)
    }
}

/// Whether decision `seed` serves campaign `campaign_hash` at probability `p`.
pub fn coin(p: f64, seed: u64, campaign_hash: u64) -> bool {
    if p >= 1.0 {
        return true;
    }
    let draw = xxh3_64_with_seed(&campaign_hash.to_le_bytes(), seed ^ 0x5eed_9ace);
    (draw as f64 / u64::MAX as f64) < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_is_a_ramp_not_a_switch() {
        let daily = 1_000_000;
        assert_eq!(
            serve_probability(400_000, daily, 0.5),
            1.0,
            "behind the line"
        );
        let just_ahead = serve_probability(505_000, daily, 0.5);
        assert!(just_ahead > 0.2 && just_ahead < 1.0, "{just_ahead}");
        assert_eq!(serve_probability(520_000, daily, 0.5), 0.0, "far ahead");
        assert_eq!(serve_probability(0, 0, 0.5), 0.0, "no budget");
    }

    #[test]
    fn days_follow_the_campaign_time_zone() {
        // 2026-11-22T04:00Z is 23:00 the day before in New York.
        let ms = 1_795_320_000_000;
        let (utc_day, utc_elapsed) = local_day(chrono_tz::UTC, ms);
        let (ny_day, ny_elapsed) = local_day(chrono_tz::America::New_York, ms);
        assert_eq!(utc_day, ny_day + 1);
        assert!((utc_elapsed - 4.0 / 24.0).abs() < 1e-9);
        assert!((ny_elapsed - 23.0 / 24.0).abs() < 1e-9);
    }

    #[test]
    fn the_coin_is_fair_and_deterministic() {
        let heads = (0..10_000u64).filter(|&d| coin(0.3, d, 42)).count();
        assert!((2_800..3_200).contains(&heads), "{heads}");
        assert_eq!(coin(0.5, 7, 9), coin(0.5, 7, 9));
    }
}
