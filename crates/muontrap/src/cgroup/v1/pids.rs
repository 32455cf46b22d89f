//! v1 `pids` controller: the same files as v2 (`pids.max`, `pids.current`, `pids.events`), so
//! statistics and read-back are shared with [`crate::cgroup::v2::pids`].

use crate::cgroup::Write;
use crate::cgroup::limits::Limits;

/// The controller's name.
pub const NAME: &str = "pids";

/// File writes for the pids settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    crate::cgroup::v2::pids::apply(l, out);
}
