//! v1 `memory` controller: `memory.limit_in_bytes` (memory_max),
//! `memory.soft_limit_in_bytes` (memory_low, as runc maps a reservation),
//! `memory.memsw.limit_in_bytes` (memory + swap, so memory_max + memory_swap_max).
//! `memory.high` and `memory.oom.group` have no v1 equivalent and are refused.

use std::path::Path;

use crate::cgroup::error::CgroupError;
use crate::cgroup::limits::Limits;
use crate::cgroup::size::SizeLimit;
use crate::cgroup::stats::{Statistics, parse_flat_keyed};
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "memory";

fn v1(s: SizeLimit) -> String {
    match s {
        SizeLimit::Bytes(n) => n.to_string(),
        SizeLimit::Max => "-1".to_owned(),
    }
}

/// File writes for the memory settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) -> Result<(), CgroupError> {
    if l.memory_high.is_some() {
        return Err(CgroupError::Unsupported {
            setting: "memory_high",
            version: "v1",
            hint: "use memory_max, or cgroup v2",
        });
    }
    if l.memory_oom_group.is_some() {
        return Err(CgroupError::Unsupported {
            setting: "memory_oom_group",
            version: "v1",
            hint: "v1's OOM killer always picks single processes",
        });
    }
    if let Some(m) = l.memory_max {
        out.push(Write::new(NAME, "memory.limit_in_bytes", v1(m)));
    }
    if let Some(m) = l.memory_low {
        out.push(Write::new(NAME, "memory.soft_limit_in_bytes", v1(m)));
    }
    if let Some(swap) = l.memory_swap_max {
        let memsw = match (l.memory_max, swap) {
            (Some(SizeLimit::Bytes(m)), SizeLimit::Bytes(s)) => {
                SizeLimit::Bytes(m.saturating_add(s))
            }
            (Some(_), _) => SizeLimit::Max,
            (None, _) => {
                return Err(CgroupError::Unsupported {
                    setting: "memory_swap_max",
                    version: "v1",
                    hint: "v1 limits memory + swap together: set memory_max too",
                });
            }
        };
        out.push(Write::new(NAME, "memory.memsw.limit_in_bytes", v1(memsw)));
    }
    Ok(())
}

/// Memory statistics; raw entries are prefixed with `prefix`.
pub fn stats(dir: &Path, prefix: &str, s: &mut Statistics) {
    s.memory_current = fs::read_u64(dir, "memory.usage_in_bytes");
    s.memory_peak = fs::read_u64(dir, "memory.max_usage_in_bytes");
    if let Some(text) = fs::read_opt(dir, "memory.oom_control") {
        s.oom_kill = parse_flat_keyed(&text).get("oom_kill").copied();
    }
    for f in [
        "memory.usage_in_bytes",
        "memory.max_usage_in_bytes",
        "memory.oom_control",
        "memory.failcnt",
        "memory.stat",
        "memory.memsw.usage_in_bytes",
        "memory.memsw.max_usage_in_bytes",
    ] {
        if let Some(text) = fs::read_opt(dir, f) {
            s.raw.insert(format!("{prefix}{f}"), text);
        }
    }
}

/// Reads the memory settings back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.memory_max = super::read_limit(dir, "memory.limit_in_bytes");
    l.memory_low = super::read_limit(dir, "memory.soft_limit_in_bytes");
    l.memory_swap_max = match (
        l.memory_max,
        super::read_limit(dir, "memory.memsw.limit_in_bytes"),
    ) {
        (Some(SizeLimit::Bytes(m)), Some(SizeLimit::Bytes(sw))) => {
            Some(SizeLimit::Bytes(sw.saturating_sub(m)))
        }
        (_, Some(SizeLimit::Max)) => Some(SizeLimit::Max),
        _ => None,
    };
}
