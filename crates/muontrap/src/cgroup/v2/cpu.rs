//! v2 `cpu` controller: `cpu.max` (`QUOTA PERIOD`), `cpu.weight`; statistics from `cpu.stat`,
//! whose `usage_usec`/`user_usec`/`system_usec` exist even without the controller.

use std::path::Path;

use crate::cgroup::limits::{CpuMax, Limits};
use crate::cgroup::stats::{Statistics, parse_flat_keyed};
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "cpu";

/// File writes for the cpu settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(m) = l.cpu_max {
        let quota = m
            .quota_us
            .map_or_else(|| "max".to_owned(), |q| q.to_string());
        out.push(Write::new(
            NAME,
            "cpu.max",
            format!("{quota} {}", m.period_us),
        ));
    }
    if let Some(w) = l.cpu_weight {
        out.push(Write::new(NAME, "cpu.weight", w.to_string()));
    }
}

/// CPU statistics of `dir`.
pub fn stats(dir: &Path, s: &mut Statistics) {
    if let Some(text) = fs::read_opt(dir, "cpu.stat") {
        let m = parse_flat_keyed(&text);
        s.cpu_usage_usec = m.get("usage_usec").copied();
        s.cpu_user_usec = m.get("user_usec").copied();
        s.cpu_system_usec = m.get("system_usec").copied();
        s.cpu_nr_periods = m.get("nr_periods").copied();
        s.cpu_nr_throttled = m.get("nr_throttled").copied();
        s.cpu_throttled_usec = m.get("throttled_usec").copied();
        s.raw.insert("cpu.stat".into(), text);
    }
}

/// Parses `cpu.max` (`max 100000`, `50000 100000`).
pub fn parse_cpu_max(text: &str) -> Option<CpuMax> {
    let mut w = text.split_whitespace();
    let quota = match w.next()? {
        "max" => None,
        q => Some(q.parse().ok()?),
    };
    let period_us = w.next()?.parse().ok()?;
    Some(CpuMax {
        quota_us: quota,
        period_us,
    })
}

/// Reads the cpu settings back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.cpu_max = fs::read_opt(dir, "cpu.max").and_then(|t| parse_cpu_max(&t));
    l.cpu_weight = fs::read_opt(dir, "cpu.weight").and_then(|t| t.trim().parse().ok());
}
