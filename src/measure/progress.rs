//! A progress bar on stderr for long reports: drawn only when stderr is a terminal, and
//! only once a pass has run for a moment, so short reports and pipes never see it.

use super::Progress;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How long a pass runs before the bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(400);
/// How often it is redrawn.
const REDRAW: Duration = Duration::from_millis(100);
const WIDTH: usize = 30;

pub struct Bar {
    enabled: bool,
    started: Instant,
    pass: u8,
    last_draw: Option<Instant>,
}

impl Bar {
    /// A bar on stderr, drawn only if stderr is a terminal.
    pub fn stderr() -> Bar {
        Bar::new(std::io::stderr().is_terminal())
    }

    pub fn new(enabled: bool) -> Bar {
        Bar {
            enabled,
            started: Instant::now(),
            pass: 0,
            last_draw: None,
        }
    }

    pub fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        if p.pass != self.pass {
            self.pass = p.pass;
            self.started = Instant::now();
        }
        let now = Instant::now();
        if now.duration_since(self.started) < SHOW_AFTER
            || self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW)
        {
            return;
        }
        self.last_draw = Some(now);
        let _ = std::io::stderr().write_all(line(p, now.duration_since(self.started)).as_bytes());
    }

    /// Clears the bar, if it was drawn.
    pub fn finish(&mut self) {
        if self.last_draw.take().is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[2K");
        }
    }
}

/// One frame: `pass 1/2 identities [#####-----]  45%  1,234,567 records  1.1M/s`.
pub fn line(p: Progress, elapsed: Duration) -> String {
    let share = if p.bytes_total == 0 {
        1.0
    } else {
        (p.bytes_done as f64 / p.bytes_total as f64).clamp(0.0, 1.0)
    };
    let filled = (share * WIDTH as f64).round() as usize;
    let what = if p.pass == 1 {
        "identities "
    } else {
        "attribution"
    };
    let rate = p.records as f64 / elapsed.as_secs_f64().max(1e-3) / 1e6;
    format!(
        "\r\x1b[2Kpass {}/2 {what} [{}{}] {:>3.0}%  {} records  {rate:.1}M/s",
        p.pass,
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        share * 100.0,
        super::format::count(p.records),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_shows_pass_share_and_rate() {
        let p = Progress {
            pass: 2,
            bytes_done: 50,
            bytes_total: 100,
            records: 2_000_000,
        };
        let s = line(p, Duration::from_secs(2));
        assert!(s.contains("pass 2/2 attribution"), "{s}");
        assert!(s.contains("[###############---------------]  50%"), "{s}");
        assert!(s.contains("2,000,000 records  1.0M/s"), "{s}");
        let mut hidden = Bar::new(false);
        hidden.update(p);
        hidden.finish();
        assert!(hidden.last_draw.is_none());
    }
}
