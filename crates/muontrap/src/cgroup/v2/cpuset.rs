//! v2 `cpuset` controller: `cpuset.cpus`, `cpuset.mems` (passed through unchanged).

use std::path::Path;

use crate::cgroup::limits::Limits;
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "cpuset";

/// File writes for the cpuset settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(c) = &l.cpuset_cpus {
        out.push(Write::new(NAME, "cpuset.cpus", c.clone()));
    }
    if let Some(m) = &l.cpuset_mems {
        out.push(Write::new(NAME, "cpuset.mems", m.clone()));
    }
}

/// Reads the cpuset settings back (trimmed; an unset file reads as `""`).
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.cpuset_cpus = fs::read_opt(dir, "cpuset.cpus").map(|t| t.trim().to_owned());
    l.cpuset_mems = fs::read_opt(dir, "cpuset.mems").map(|t| t.trim().to_owned());
}
