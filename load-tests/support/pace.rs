//! Open-loop pacing with coordinated omission corrected.
//!
//! A closed-loop generator (wrk) sends the next request only when the last answer is
//! in, so when the server stalls for 100 ms it simply stops asking, and the stall shows
//! up as one slow request instead of the hundreds that real shoppers would have sent
//! meanwhile ("coordinated omission"). Here every request has a time it is *due*,
//! fixed in advance by the target rate; a connection sends it then, or at once if it is
//! already late, and its latency is counted from when it was due. A stall therefore
//! counts for every request that should have been sent during it.

use super::latency::Latency;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The schedule of one of `connections` connections sharing `rate` requests per
/// second: the rate's global sequence of due times, dealt out round robin, so request
/// `k` of connection `c` is due at `(k·connections + c) / rate` after the start.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub connection: u64,
    pub connections: u64,
    pub rate: f64,
}

impl Schedule {
    /// When this connection's request `k` is due, from the start of the run.
    pub fn due(&self, k: u64) -> Duration {
        let slot = k * self.connections + self.connection;
        Duration::from_secs_f64(slot as f64 / self.rate)
    }
}

/// Time as the driver sees it: from the start of the run.
pub trait Clock {
    fn now(&self) -> Duration;
    fn sleep_until(&self, t: Duration);
}

/// The real clock. `thread::sleep` is a `nanosleep`, which wakes within the kernel's
/// timer slack (50 µs by default) of the deadline.
pub struct Wall(pub Instant);

impl Clock for Wall {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep_until(&self, t: Duration) {
        let now = self.now();
        if t > now {
            std::thread::sleep(t - now);
        }
    }
}

/// A clock that only moves when told to: for tests of the pacing itself.
#[derive(Default)]
pub struct Manual(pub Cell<Duration>);

impl Manual {
    pub fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }
}

impl Clock for Manual {
    fn now(&self) -> Duration {
        self.0.get()
    }
    fn sleep_until(&self, t: Duration) {
        if t > self.0.get() {
            self.0.set(t);
        }
    }
}

/// What one connection measured.
pub struct Recorded {
    /// From when each request was due to its answer: what a shopper waits.
    pub corrected: Latency,
    /// From when each request was actually sent to its answer: what wrk reports.
    pub uncorrected: Latency,
    pub sent: u64,
    pub errors: u64,
}

/// Runs one connection's share of the schedule: request `k` goes out when it is due, or
/// as soon as the previous answer is in when that is later, until the schedule reaches
/// `end`. Requests due before `warmup` are sent but not recorded. `exchange(k)` sends
/// request `k`, waits for its answer and says whether it was a success.
pub fn drive(
    schedule: &Schedule,
    warmup: Duration,
    end: Duration,
    clock: &impl Clock,
    mut exchange: impl FnMut(u64) -> bool,
) -> Recorded {
    let mut recorded = Recorded {
        corrected: Latency::new(),
        uncorrected: Latency::new(),
        sent: 0,
        errors: 0,
    };
    for k in 0.. {
        let due = schedule.due(k);
        if due >= end {
            break;
        }
        clock.sleep_until(due);
        let sent = clock.now();
        let ok = exchange(k);
        let done = clock.now();
        if due >= warmup {
            recorded.corrected.record(done.saturating_sub(due));
            recorded.uncorrected.record(done.saturating_sub(sent));
            recorded.sent += 1;
            if !ok {
                recorded.errors += 1;
            }
        }
    }
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn connections_share_the_rate_round_robin() {
        let at = |c, k| {
            Schedule {
                connection: c,
                connections: 4,
                rate: 1000.0,
            }
            .due(k)
        };
        assert_eq!(at(0, 0), Duration::ZERO);
        assert_eq!(at(1, 0), MS);
        assert_eq!(at(3, 0), 3 * MS);
        assert_eq!(at(0, 1), 4 * MS);
        assert_eq!(at(2, 5), 22 * MS);
    }

    #[test]
    fn a_stall_counts_for_every_request_due_during_it() {
        // 1,000 requests/s on one connection for 1 s; the server answers in 100 µs,
        // but request 200 takes 100 ms.
        let clock = Manual::default();
        let schedule = Schedule {
            connection: 0,
            connections: 1,
            rate: 1000.0,
        };
        let r = drive(&schedule, Duration::ZERO, 1000 * MS, &clock, |k| {
            clock.advance(if k == 200 { 100 * MS } else { MS / 10 });
            true
        });
        assert_eq!(r.sent, 1000);
        // Measured from the actual send, one request was slow...
        let uncorrected = r.uncorrected.summary();
        assert!(uncorrected.p99_us <= 101, "{uncorrected:?}");
        assert!(uncorrected.max_us >= 99_000);
        // ...but ~100 requests were due while it stalled, and each waited.
        let corrected = r.corrected.summary();
        assert!(corrected.p99_us >= 50_000, "{corrected:?}");
        assert!(corrected.p50_us <= 101, "{corrected:?}");
        assert!(r.corrected.count_at_least(50 * MS) >= 49);
    }

    #[test]
    fn warmup_requests_are_sent_but_not_recorded() {
        let clock = Manual::default();
        let schedule = Schedule {
            connection: 0,
            connections: 1,
            rate: 100.0,
        };
        let mut calls = 0;
        let r = drive(&schedule, 500 * MS, 1000 * MS, &clock, |_| {
            calls += 1;
            clock.advance(MS);
            calls % 10 != 0
        });
        assert_eq!(calls, 100);
        assert_eq!(r.sent, 50);
        assert_eq!(r.errors, 5);
    }
}
