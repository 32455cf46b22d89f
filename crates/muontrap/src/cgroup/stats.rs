//! [`Statistics`]: what a cgroup has used, typed, plus every raw statistics file.
//!
//! The typed fields are in cgroup v2 units (bytes, microseconds) whatever the hierarchy; the v1
//! modules convert (`cpuacct` nanoseconds and clock ticks, `throttled_time` nanoseconds). A
//! field is `None` when this machine's cgroups do not provide it.

use std::collections::BTreeMap;

/// One line of a pressure (PSI) file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Share of time stalled over the last 10 s, in percent.
    pub avg10: f64,
    /// Over the last 60 s.
    pub avg60: f64,
    /// Over the last 300 s.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_usec: u64,
}

/// A pressure file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: Option<PressureLine>,
    /// All tasks stalled.
    pub full: Option<PressureLine>,
}

/// What a cgroup has used.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Statistics {
    /// Memory in use now, bytes (`memory.current`; v1 `memory.usage_in_bytes`).
    pub memory_current: Option<u64>,
    /// Highest memory use, bytes (`memory.peak`; v1 `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// Swap in use now, bytes (`memory.swap.current`).
    pub memory_swap_current: Option<u64>,
    /// Times the limit was hit hard enough to invoke the OOM killer (`memory.events` `oom`;
    /// v1: `memory.failcnt` counts limit hits instead, so this stays `None`).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer (`memory.events` `oom_kill`; v1 `memory.oom_control`).
    pub oom_kill: Option<u64>,
    /// Total CPU time, microseconds (`cpu.stat` `usage_usec`; v1 `cpuacct.usage`).
    pub cpu_usage_usec: Option<u64>,
    /// User CPU time, microseconds.
    pub cpu_user_usec: Option<u64>,
    /// System CPU time, microseconds.
    pub cpu_system_usec: Option<u64>,
    /// Enforcement periods that elapsed (`nr_periods`).
    pub cpu_nr_periods: Option<u64>,
    /// Periods in which the cgroup was throttled (`nr_throttled`).
    pub cpu_nr_throttled: Option<u64>,
    /// Time spent throttled, microseconds (`throttled_usec`; v1 `throttled_time` / 1000).
    pub cpu_throttled_usec: Option<u64>,
    /// Processes and threads now (`pids.current`).
    pub pids_current: Option<u64>,
    /// Most processes and threads at once (`pids.peak`).
    pub pids_peak: Option<u64>,
    /// Forks refused by `pids.max` (`pids.events` `max`).
    pub pids_limit_hits: Option<u64>,
    /// Pressure files by resource (`cpu`, `memory`, `io`).
    pub pressure: BTreeMap<String, Pressure>,
    /// Every statistics file read, raw, by name. v1 files are prefixed by their hierarchy
    /// (`memory/memory.stat`) so they cannot collide with the v2 files of a hybrid machine.
    pub raw: BTreeMap<String, String>,
}

/// A flat-keyed file (`key value` lines, e.g. `cpu.stat`, `memory.events`). Lines whose value
/// is not an integer are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A pressure file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a `full` line.
pub fn parse_pressure(text: &str) -> Pressure {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let kind = words.next();
        let mut l = PressureLine::default();
        let mut any = false;
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => l.avg10 = v.parse().unwrap_or_default(),
                "avg60" => l.avg60 = v.parse().unwrap_or_default(),
                "avg300" => l.avg300 = v.parse().unwrap_or_default(),
                "total" => l.total_usec = v.parse().unwrap_or_default(),
                _ => continue,
            }
            any = true;
        }
        match (kind, any) {
            (Some("some"), true) => p.some = Some(l),
            (Some("full"), true) => p.full = Some(l),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_skips_what_is_not_a_number() {
        let m = parse_flat_keyed("usage_usec 123\nuser_usec 100\nbogus x\n\nsystem_usec 23\n");
        assert_eq!(m["usage_usec"], 123);
        assert_eq!(m["system_usec"], 23);
        assert!(!m.contains_key("bogus"));
    }

    #[test]
    fn pressure_lines() {
        let p = parse_pressure(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!(p.some.unwrap().avg10, 1.5);
        assert_eq!(p.some.unwrap().total_usec, 1234);
        assert_eq!(p.full.unwrap().total_usec, 7);
        assert_eq!(parse_pressure("junk\n"), Pressure::default());
    }
}
