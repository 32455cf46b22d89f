//! v1 `cpuset` controller: `cpuset.cpus`, `cpuset.mems`. A new v1 cpuset starts with both
//! empty and refuses tasks until they are set, so the plan copies the parent's value into
//! every cpuset directory it creates before the settings are written.

use crate::cgroup::Write;
use crate::cgroup::limits::Limits;

/// The controller's name.
pub const NAME: &str = "cpuset";

/// File writes for the cpuset settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    crate::cgroup::v2::cpuset::apply(l, out);
}
