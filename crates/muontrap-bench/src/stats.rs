//! Summary statistics over timing samples.

use std::time::Duration;

/// Median, p90 and mean of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub n: usize,
    pub median: Duration,
    pub p90: Duration,
    pub mean: Duration,
}

impl Stats {
    /// Summarises `samples` (must not be empty).
    pub fn of(samples: &[Duration]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_unstable();
        let n = s.len();
        // Nearest-rank percentiles.
        let rank = |p: f64| -> Duration {
            let r = ((p * n as f64).ceil() as usize).clamp(1, n);
            s[r - 1]
        };
        let total: Duration = s.iter().sum();
        Stats {
            n,
            median: rank(0.5),
            p90: rank(0.9),
            mean: total / n as u32,
        }
    }
}

/// A duration for the table: µs below 10 ms, ms above.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}
