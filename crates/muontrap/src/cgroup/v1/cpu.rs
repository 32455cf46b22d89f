//! v1 `cpu` controller: `cpu.cfs_period_us` + `cpu.cfs_quota_us` (cpu_max; the period is
//! written first so the quota is checked against the new period), `cpu.shares` (cpu_weight);
//! throttling statistics from `cpu.stat` (`throttled_time` is in nanoseconds).

use std::path::Path;

use crate::cgroup::limits::{CpuMax, Limits};
use crate::cgroup::stats::{Statistics, parse_flat_keyed};
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "cpu";

/// `cpu.weight` → `cpu.shares`, as systemd and runc convert.
pub fn shares_of_weight(w: u16) -> u64 {
    2 + (u64::from(w.max(1)) - 1) * 262_142 / 9_999
}

/// `cpu.shares` → `cpu.weight` (the inverse, rounded up so a round trip is exact).
pub fn weight_of_shares(shares: u64) -> u16 {
    let s = shares.clamp(2, 262_144);
    (1 + ((s - 2) * 9_999).div_ceil(262_142)) as u16
}

/// File writes for the cpu settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(m) = l.cpu_max {
        out.push(Write::new(
            NAME,
            "cpu.cfs_period_us",
            m.period_us.to_string(),
        ));
        let quota = m
            .quota_us
            .map_or_else(|| "-1".to_owned(), |q| q.to_string());
        out.push(Write::new(NAME, "cpu.cfs_quota_us", quota));
    }
    if let Some(w) = l.cpu_weight {
        out.push(Write::new(
            NAME,
            "cpu.shares",
            shares_of_weight(w).to_string(),
        ));
    }
}

/// Throttling statistics; raw entries are prefixed with `prefix`.
pub fn stats(dir: &Path, prefix: &str, s: &mut Statistics) {
    if let Some(text) = fs::read_opt(dir, "cpu.stat") {
        let m = parse_flat_keyed(&text);
        s.cpu_nr_periods = m.get("nr_periods").copied();
        s.cpu_nr_throttled = m.get("nr_throttled").copied();
        s.cpu_throttled_usec = m.get("throttled_time").map(|ns| ns / 1000);
        s.raw.insert(format!("{prefix}cpu.stat"), text);
    }
}

/// Reads the cpu settings back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    let period = fs::read_u64(dir, "cpu.cfs_period_us");
    let quota = fs::read_opt(dir, "cpu.cfs_quota_us").and_then(|t| t.trim().parse::<i64>().ok());
    l.cpu_max = match (quota, period) {
        (Some(q), Some(p)) => Some(CpuMax {
            quota_us: u64::try_from(q).ok(),
            period_us: p,
        }),
        _ => None,
    };
    l.cpu_weight = fs::read_u64(dir, "cpu.shares").map(weight_of_shares);
}
