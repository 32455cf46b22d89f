//! Restart intensity: at most `max_restarts` restarts within `period`, else give up.
//!
//! This is OTP's `intensity`/`period`. It exists so that a child that crashes on start cannot
//! make its supervisor spin forever: a supervisor that restarts more often than allowed stops
//! all its children and fails itself, handing the problem to its parent. Time is passed in
//! (`Instant`s from the caller), so the window is tested without clocks or sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The allowed restart rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Intensity {
    /// Restarts allowed within `period`; one more gives up. Zero: the first failure gives up.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            period: Duration::from_secs(5),
        }
    }
}

/// The intensity was exceeded: the supervisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Restarts counted within the window, the one that exceeded included.
    pub restarts: u32,
    /// The window they fell into.
    pub period: Duration,
}

/// The restart times within the current window.
#[derive(Debug, Clone, Default)]
pub struct RestartWindow {
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// An empty window.
    pub fn new() -> RestartWindow {
        RestartWindow::default()
    }

    /// Records a restart at `now` and says whether it is still allowed. Restarts older than
    /// `period` before `now` are forgotten. Like OTP, a restart exactly `period` ago still
    /// counts (the window is closed at both ends).
    pub fn record(&mut self, now: Instant, intensity: Intensity) -> Result<(), Exceeded> {
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) > intensity.period {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        let restarts = self.times.len() as u32;
        if restarts > intensity.max_restarts {
            Err(Exceeded {
                restarts,
                period: intensity.period,
            })
        } else {
            Ok(())
        }
    }

    /// Restarts currently within the window (as of the last `record`).
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no restart is remembered.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_is_three_in_five_seconds() {
        let i = Intensity::default();
        assert_eq!((i.max_restarts, i.period), (3, Duration::from_secs(5)));
    }

    #[test]
    fn the_fourth_restart_within_the_period_gives_up() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new();
        let i = Intensity::default();
        assert_eq!(w.record(t0, i), Ok(()));
        assert_eq!(w.record(t0 + ms(100), i), Ok(()));
        assert_eq!(w.record(t0 + ms(200), i), Ok(()));
        assert_eq!(
            w.record(t0 + ms(300), i),
            Err(Exceeded {
                restarts: 4,
                period: Duration::from_secs(5)
            })
        );
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new();
        let i = Intensity {
            max_restarts: 2,
            period: ms(1000),
        };
        assert_eq!(w.record(t0, i), Ok(()));
        assert_eq!(w.record(t0 + ms(500), i), Ok(()));
        // t0 falls out of the window at t0 + 1001 ms.
        assert_eq!(w.record(t0 + ms(1001), i), Ok(()));
        assert_eq!(w.len(), 2);
        assert!(w.record(t0 + ms(1002), i).is_err());
    }

    #[test]
    fn a_restart_exactly_one_period_ago_still_counts() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new();
        let i = Intensity {
            max_restarts: 1,
            period: ms(1000),
        };
        assert_eq!(w.record(t0, i), Ok(()));
        assert!(w.record(t0 + ms(1000), i).is_err());
    }

    #[test]
    fn zero_max_restarts_gives_up_at_once() {
        let mut w = RestartWindow::new();
        let i = Intensity {
            max_restarts: 0,
            period: ms(1000),
        };
        assert!(w.record(Instant::now(), i).is_err());
    }

    #[test]
    fn a_steady_slow_crash_rate_never_gives_up() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new();
        let i = Intensity::default();
        for n in 0..100 {
            // One restart every 2 s: at most 3 within any 5 s window.
            assert_eq!(w.record(t0 + ms(2000 * n), i), Ok(()), "restart {n}");
        }
        assert!(w.len() <= 3);
    }
}
