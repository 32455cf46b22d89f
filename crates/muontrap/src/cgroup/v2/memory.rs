//! v2 `memory` controller: `memory.max`, `memory.high`, `memory.low`, `memory.swap.max`,
//! `memory.oom.group`; statistics from `memory.current`, `memory.peak`, `memory.events`.

use std::path::Path;

use crate::cgroup::limits::Limits;
use crate::cgroup::size::{SizeLimit, parse_size};
use crate::cgroup::stats::{Statistics, parse_flat_keyed};
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "memory";

/// File writes for the memory settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    let size = |file: &str, v: Option<SizeLimit>, out: &mut Vec<Write>| {
        if let Some(v) = v {
            out.push(Write::new(NAME, file, v.to_string()));
        }
    };
    size("memory.max", l.memory_max, out);
    size("memory.high", l.memory_high, out);
    size("memory.low", l.memory_low, out);
    size("memory.swap.max", l.memory_swap_max, out);
    if let Some(g) = l.memory_oom_group {
        out.push(Write::new(NAME, "memory.oom.group", (g as u8).to_string()));
    }
}

/// Memory statistics of `dir`.
pub fn stats(dir: &Path, s: &mut Statistics) {
    s.memory_current = fs::read_u64(dir, "memory.current");
    s.memory_peak = fs::read_u64(dir, "memory.peak");
    s.memory_swap_current = fs::read_u64(dir, "memory.swap.current");
    if let Some(text) = fs::read_opt(dir, "memory.events") {
        let m = parse_flat_keyed(&text);
        s.oom = m.get("oom").copied();
        s.oom_kill = m.get("oom_kill").copied();
        s.raw.insert("memory.events".into(), text);
    }
    for f in [
        "memory.current",
        "memory.peak",
        "memory.stat",
        "memory.swap.current",
    ] {
        if let Some(text) = fs::read_opt(dir, f) {
            s.raw.insert(f.into(), text);
        }
    }
}

/// Reads the memory settings back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    let size = |f: &str| parse_size(&fs::read_opt(dir, f)?).ok();
    l.memory_max = size("memory.max");
    l.memory_high = size("memory.high");
    l.memory_low = size("memory.low");
    l.memory_swap_max = size("memory.swap.max");
    l.memory_oom_group = match fs::read_opt(dir, "memory.oom.group")
        .as_deref()
        .map(str::trim)
    {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
}
