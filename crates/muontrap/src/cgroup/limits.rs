//! [`Limits`]: the typed cgroup settings, written once in cgroup v2 terms. The v2 and v1
//! controller modules map them onto files.

use super::size::SizeLimit;

/// A `cpu.max` value: at most `quota_us` of CPU time per `period_us` (both microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// The quota per period; `None` means no limit (`max`).
    pub quota_us: Option<u64>,
    /// The period (the kernel's default is 100000 µs).
    pub period_us: u64,
}

impl CpuMax {
    /// The kernel's default period, 100 ms.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;

    /// `quota_us` per `period_us`.
    pub fn new(quota_us: u64, period_us: u64) -> CpuMax {
        CpuMax {
            quota_us: Some(quota_us),
            period_us,
        }
    }

    /// No limit, with the default period.
    pub fn unlimited() -> CpuMax {
        CpuMax {
            quota_us: None,
            period_us: Self::DEFAULT_PERIOD_US,
        }
    }

    /// `cpus` CPUs' worth of time (e.g. 0.5) over the default period.
    pub fn cpus(cpus: f64) -> CpuMax {
        let quota = (cpus.max(0.0) * Self::DEFAULT_PERIOD_US as f64).round() as u64;
        CpuMax::new(quota.max(1000), Self::DEFAULT_PERIOD_US)
    }
}

/// A `pids.max` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidsLimit {
    /// At most this many processes and threads.
    Count(u64),
    /// No limit.
    Max,
}

impl std::fmt::Display for PidsLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PidsLimit::Count(n) => write!(f, "{n}"),
            PidsLimit::Max => f.write_str("max"),
        }
    }
}

/// cgroup settings for a command, in cgroup v2 terms (see the [`crate::cgroup`] module docs
/// for how they map onto cgroup v1). Unset fields are left as the kernel made them.
///
/// ```
/// use muontrap::cgroup::{Limits, PidsLimit, SizeLimit};
/// let mut limits = Limits::new();
/// limits
///     .memory_max(SizeLimit::Bytes(256 << 20))
///     .pids_max(PidsLimit::Count(64))
///     .set("memory.swappiness", "0");
/// assert_eq!(limits.get_memory_max(), Some(SizeLimit::Bytes(256 << 20)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub(crate) memory_max: Option<SizeLimit>,
    pub(crate) memory_high: Option<SizeLimit>,
    pub(crate) memory_low: Option<SizeLimit>,
    pub(crate) memory_swap_max: Option<SizeLimit>,
    pub(crate) memory_oom_group: Option<bool>,
    pub(crate) cpu_max: Option<CpuMax>,
    pub(crate) cpu_weight: Option<u16>,
    pub(crate) pids_max: Option<PidsLimit>,
    pub(crate) cpuset_cpus: Option<String>,
    pub(crate) cpuset_mems: Option<String>,
    pub(crate) io_weight: Option<u16>,
    pub(crate) raw: Vec<(String, String)>,
    pub(crate) controllers: Vec<String>,
}

macro_rules! setting {
    ($field:ident, $get:ident, $ty:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $field(&mut self, value: impl Into<$ty>) -> &mut Self {
            self.$field = Some(value.into());
            self
        }
        #[doc = concat!("The value set with [`Limits::", stringify!($field), "`].")]
        pub fn $get(&self) -> Option<$ty> {
            self.$field.clone()
        }
    };
}

impl Limits {
    /// No settings.
    pub fn new() -> Limits {
        Limits::default()
    }

    setting!(
        memory_max,
        get_memory_max,
        SizeLimit,
        "`memory.max`: hard limit; the OOM killer acts above it (v1: `memory.limit_in_bytes`)."
    );
    setting!(
        memory_high,
        get_memory_high,
        SizeLimit,
        "`memory.high`: throttling threshold (no v1 equivalent: an error on v1)."
    );
    setting!(
        memory_low,
        get_memory_low,
        SizeLimit,
        "`memory.low`: best-effort protection (v1: `memory.soft_limit_in_bytes`)."
    );
    setting!(
        memory_swap_max,
        get_memory_swap_max,
        SizeLimit,
        "`memory.swap.max`: swap limit (v1: `memory.memsw.limit_in_bytes` = memory_max + this; needs memory_max)."
    );
    setting!(
        memory_oom_group,
        get_memory_oom_group,
        bool,
        "`memory.oom.group`: the OOM killer takes the whole cgroup (no v1 equivalent)."
    );
    setting!(
        cpu_max,
        get_cpu_max,
        CpuMax,
        "`cpu.max`: CPU bandwidth (v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us`)."
    );
    setting!(
        cpu_weight,
        get_cpu_weight,
        u16,
        "`cpu.weight`, 1–10000 (v1: `cpu.shares` = 2 + (weight − 1) × 262142 / 9999)."
    );
    setting!(
        pids_max,
        get_pids_max,
        PidsLimit,
        "`pids.max`: most processes and threads."
    );
    setting!(
        cpuset_cpus,
        get_cpuset_cpus,
        String,
        "`cpuset.cpus`, e.g. `0-1` (v1: the parent's `cpuset.mems` is copied when unset)."
    );
    setting!(
        cpuset_mems,
        get_cpuset_mems,
        String,
        "`cpuset.mems`, e.g. `0`."
    );
    setting!(
        io_weight,
        get_io_weight,
        u16,
        "`io.weight`, 1–10000 (v1: `blkio.weight` = 10 + (weight − 1) × 990 / 9999)."
    );

    /// Writes `value` to the cgroup file `key` (e.g. `memory.swappiness`) after the typed
    /// settings, in order. On v1 the file goes to the hierarchy of the controller named by the
    /// key's prefix.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.raw.push((key.into(), value.into()));
        self
    }

    /// Uses `controller` for the cgroup even without a setting for it: on v2 it is enabled
    /// in the ancestors and must be available in the cgroup (an error otherwise); on v1 the
    /// command joins its hierarchy. For accounting, and for MuonTrap's `--controller`.
    pub fn controller(&mut self, controller: impl Into<String>) -> &mut Self {
        let c = controller.into();
        if !self.controllers.contains(&c) {
            self.controllers.push(c);
        }
        self
    }

    /// The controllers asked for with [`Limits::controller`].
    pub fn get_controllers(&self) -> &[String] {
        &self.controllers
    }

    /// The raw settings, in order.
    pub fn get_raw(&self) -> &[(String, String)] {
        &self.raw
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Where a command's cgroup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Exactly this cgroup, created by muontrap (it must not exist yet), emptied and removed
    /// at the end.
    Path(String),
    /// A new, uniquely named child of this cgroup, emptied and removed at the end.
    Base(String),
}
