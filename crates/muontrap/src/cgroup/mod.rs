//! cgroups: limits, birth inside the cgroup, atomic teardown, statistics.
//!
//! A command may run in a cgroup of its own ([`Placement`]): `Path` is exactly one cgroup that
//! muontrap creates, `Base` is a uniquely named child of a given cgroup. A path is relative to
//! the hierarchy's mount point (`a/b`), or, written `./a/b`, to **this process's own cgroup**
//! (what systemd delegation needs). `..` is refused.
//!
//! How the pieces fit:
//! - [`layout`] reads which hierarchies the machine has from `/proc/self/mountinfo`: pure v2,
//!   hybrid (v1 controllers + a v2 hierarchy, usually without controllers, at
//!   `/sys/fs/cgroup/unified`), or pure v1. `/sys/fs/cgroup` is never assumed to be v2.
//! - [`Limits`] are written once, in v2 terms; [`v2`] and [`v1`] map them onto files, one
//!   module per controller, the same shape on both sides.
//! - [`CgroupPlan`] is what the **owner** resolves (paths, the unique name, the file writes)
//!   and sends to the keeper inside the launch spec, so the owner knows every path without a
//!   round trip. The **keeper** executes it ([`CgroupPlan::create`]) *before* spawning, and
//!   removes everything it created if any step fails, so a bad setting leaves no directory.
//!   The command is born inside the v2 leaf (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7+)
//!   and joins every other directory (one per v1 hierarchy) between fork and exec by writing
//!   `0` (itself) to the v1 `tasks` descriptors the keeper opened; each write is checked, and a
//!   failed join fails the spawn. Where the kernel cannot clone into a cgroup, the v2 leaf is
//!   joined by a write too. Nothing the command forks can start outside.
//! - Teardown happens in the keeper, so it also happens when the owner is SIGKILLed:
//!   `cgroup.kill` where the v2 hierarchy has it (also on hybrid machines), otherwise the v1
//!   freezer and a SIGKILL sweep; then wait until the cgroup is empty (`cgroup.events`
//!   `populated 0`, or empty `cgroup.procs`), bounded; then the final [`Statistics`] are read
//!   and `rmdir` removes every directory muontrap created, in every hierarchy. The keeper sends
//!   those statistics to the owner (a variable-length control message) before the end report.
//! - [`CgroupHandle`] (from [`crate::Child::cgroup`]) reads [`Statistics`] and settings and
//!   freezes or thaws the cgroup by path, from the owner. Once the command has ended, its
//!   statistics are the final ones ([`crate::Child::cgroup_statistics`]).
//!
//! On cgroup v1, `memory_high` and `memory_oom_group` have no equivalent and are refused with
//! an error naming them; `memory_swap_max` becomes `memory.memsw.limit_in_bytes`
//! (memory + swap) and needs `memory_max`.
//!
//! Why both: `CLONE_INTO_CGROUP` covers only the v2 hierarchy, so on v1 and hybrid machines
//! the join writes are needed anyway; they happen in the child before it can fork,
//! so no descendant can be born outside either way. Cloning into the v2 leaf makes the
//! placement atomic and skips a migration (`docs/design.md` §5 has the measurements).

use std::path::PathBuf;

pub mod error;
pub mod fs;
pub mod handle;
pub mod layout;
pub mod limits;
pub mod plan;
pub mod size;
pub mod stats;
pub mod v1;
pub mod v2;

pub use error::CgroupError;
pub use handle::CgroupHandle;
pub use layout::{Layout, LayoutKind};
pub use limits::{CpuMax, Limits, PidsLimit, Placement};
pub use plan::{CgroupPlan, Dirs, LiveCgroup, SetupError, V1Dir};
pub use size::{SizeError, SizeLimit, SizeProblem, parse_size};
pub use stats::{Pressure, PressureLine, Statistics};

/// One file write asked for by a controller module: which controller's directory, which file,
/// what text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The controller (`memory`, `cpu`, …; `cgroup` for core files).
    pub controller: String,
    /// The file name inside the cgroup directory.
    pub file: String,
    /// The text to write.
    pub value: String,
}

impl Write {
    fn new(controller: &str, file: &str, value: impl Into<String>) -> Write {
        Write {
            controller: controller.to_owned(),
            file: file.to_owned(),
            value: value.into(),
        }
    }
}

/// A name for a new cgroup that no other muontrap process will pick: the owner's pid, a
/// per-process counter and the clock.
pub fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("muontrap-{}-{n}-{nanos:08x}", std::process::id())
}

/// The directory a raw setting `key` goes to: the v1 hierarchy of the controller its prefix
/// names, else the v2 directory.
pub(crate) fn dir_for_key<'a>(dirs: &'a Dirs, key: &str) -> Option<&'a PathBuf> {
    let controller = v2::controller_of(key);
    dirs.v1
        .iter()
        .find(|d| d.controllers.iter().any(|c| c == controller))
        .map(|d| &d.path)
        .or(dirs.unified.as_ref())
}
