//! v1 `cpuacct` controller: CPU usage. `cpuacct.usage` is in nanoseconds; `cpuacct.stat`
//! counts user and system time in clock ticks (`USER_HZ`, 100 on every Linux ABI).

use std::path::Path;

use crate::cgroup::fs;
use crate::cgroup::stats::{Statistics, parse_flat_keyed};

/// The controller's name.
pub const NAME: &str = "cpuacct";

const USEC_PER_TICK: u64 = 1_000_000 / 100;

/// Usage statistics; raw entries are prefixed with `prefix`.
pub fn stats(dir: &Path, prefix: &str, s: &mut Statistics) {
    s.cpu_usage_usec = fs::read_u64(dir, "cpuacct.usage").map(|ns| ns / 1000);
    if let Some(text) = fs::read_opt(dir, "cpuacct.stat") {
        let m = parse_flat_keyed(&text);
        s.cpu_user_usec = m.get("user").map(|t| t * USEC_PER_TICK);
        s.cpu_system_usec = m.get("system").map(|t| t * USEC_PER_TICK);
        s.raw.insert(format!("{prefix}cpuacct.stat"), text);
    }
    if let Some(text) = fs::read_opt(dir, "cpuacct.usage") {
        s.raw.insert(format!("{prefix}cpuacct.usage"), text);
    }
}
