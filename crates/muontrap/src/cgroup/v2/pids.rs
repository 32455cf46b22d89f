//! v2 `pids` controller: `pids.max`; statistics from `pids.current`, `pids.peak`,
//! `pids.events`.

use std::path::Path;

use crate::cgroup::limits::{Limits, PidsLimit};
use crate::cgroup::stats::{Statistics, parse_flat_keyed};
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "pids";

/// File writes for the pids settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(p) = l.pids_max {
        out.push(Write::new(NAME, "pids.max", p.to_string()));
    }
}

/// Pids statistics of `dir` (the same files exist in v1's pids hierarchy).
pub fn stats(dir: &Path, s: &mut Statistics) {
    stats_prefixed(dir, "", s);
}

/// [`stats`], with raw entries named `{prefix}pids.*`.
pub fn stats_prefixed(dir: &Path, prefix: &str, s: &mut Statistics) {
    s.pids_current = fs::read_u64(dir, "pids.current");
    s.pids_peak = fs::read_u64(dir, "pids.peak");
    if let Some(text) = fs::read_opt(dir, "pids.events") {
        s.pids_limit_hits = parse_flat_keyed(&text).get("max").copied();
        s.raw.insert(format!("{prefix}pids.events"), text);
    }
    for f in ["pids.current", "pids.peak"] {
        if let Some(text) = fs::read_opt(dir, f) {
            s.raw.insert(format!("{prefix}{f}"), text);
        }
    }
}

/// Parses `pids.max`.
pub fn parse_pids_max(text: &str) -> Option<PidsLimit> {
    match text.trim() {
        "max" => Some(PidsLimit::Max),
        n => n.parse().ok().map(PidsLimit::Count),
    }
}

/// Reads the pids setting back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.pids_max = fs::read_opt(dir, "pids.max").and_then(|t| parse_pids_max(&t));
}
