//! cgroup v1: the same typed [`Limits`] mapped onto v1 files, one hierarchy per controller
//! (or per group of controllers, such as `cpu,cpuacct`). Same shape as the v2 modules: per
//! controller `apply` (which may refuse a setting v1 cannot express), `stats`, `read_back`.
//!
//! Conversions follow runc and systemd, so a value means what it would mean there:
//! `cpu.shares = 2 + (weight − 1) × 262142 / 9999`, `blkio.weight = 10 + (weight − 1) × 990 /
//! 9999`, `max` is `-1`, and v1 "unlimited" reads back as the page-rounded `i64::MAX`.

use std::path::Path;

use super::error::CgroupError;
use super::limits::Limits;
use super::stats::Statistics;
use super::{Write, fs};

pub mod blkio;
pub mod cpu;
pub mod cpuacct;
pub mod cpuset;
pub mod memory;
pub mod pids;

/// The file writes for `limits` (controller = the v1 controller whose hierarchy holds the
/// file), typed settings first, raw ones last; an error for a setting v1 cannot express.
pub fn apply(limits: &Limits) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    memory::apply(limits, &mut out)?;
    cpu::apply(limits, &mut out);
    pids::apply(limits, &mut out);
    cpuset::apply(limits, &mut out);
    blkio::apply(limits, &mut out);
    for (k, v) in &limits.raw {
        out.push(Write::new(super::v2::controller_of(k), k, v.clone()));
    }
    Ok(out)
}

/// Statistics of one v1 hierarchy's directory, for the controllers bound to it.
pub fn stats(controllers: &[String], dir: &Path, label: &str, s: &mut Statistics) {
    let prefix = format!("{label}/");
    for c in controllers {
        match c.as_str() {
            memory::NAME => memory::stats(dir, &prefix, s),
            cpu::NAME => cpu::stats(dir, &prefix, s),
            cpuacct::NAME => cpuacct::stats(dir, &prefix, s),
            pids::NAME => super::v2::pids::stats_prefixed(dir, &prefix, s),
            _ => {}
        }
    }
}

/// Reads the settings of one v1 hierarchy's directory back into `l`.
pub fn read_back(controllers: &[String], dir: &Path, l: &mut Limits) {
    for c in controllers {
        match c.as_str() {
            memory::NAME => memory::read_back(dir, l),
            cpu::NAME => cpu::read_back(dir, l),
            pids::NAME => super::v2::pids::read_back(dir, l),
            cpuset::NAME => super::v2::cpuset::read_back(dir, l),
            blkio::NAME => blkio::read_back(dir, l),
            _ => {}
        }
    }
}

/// v1 shows "no limit" as `i64::MAX` rounded down to a page; anything that large is `max`.
pub(crate) const UNLIMITED_FLOOR: u64 = 0x7FFF_FFFF_FFFF_0000;

/// Reads a v1 byte limit (`-1` or a huge value is `max`).
pub(crate) fn read_limit(dir: &Path, file: &str) -> Option<super::size::SizeLimit> {
    use super::size::SizeLimit;
    let text = fs::read_opt(dir, file)?;
    let t = text.trim();
    if t == "-1" {
        return Some(SizeLimit::Max);
    }
    let n: u64 = t.parse().ok()?;
    Some(if n >= UNLIMITED_FLOOR {
        SizeLimit::Max
    } else {
        SizeLimit::Bytes(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::limits::{CpuMax, PidsLimit};
    use crate::cgroup::size::SizeLimit;
    use crate::cgroup::v2::fixture::FakeCgroup;

    fn files(l: &Limits) -> Vec<(String, String, String)> {
        apply(l)
            .unwrap()
            .into_iter()
            .map(|w| (w.controller, w.file, w.value))
            .collect()
    }

    #[test]
    fn typed_limits_map_onto_v1_files() {
        let mut l = Limits::new();
        l.memory_max(SizeLimit::Bytes(64 << 20))
            .memory_swap_max(SizeLimit::Bytes(0))
            .memory_low(SizeLimit::Max)
            .cpu_max(CpuMax::new(50_000, 100_000))
            .cpu_weight(100u16)
            .pids_max(PidsLimit::Count(16))
            .io_weight(10000u16);
        let got = files(&l);
        let want: Vec<(String, String, String)> = [
            ("memory", "memory.limit_in_bytes", "67108864"),
            ("memory", "memory.soft_limit_in_bytes", "-1"),
            ("memory", "memory.memsw.limit_in_bytes", "67108864"),
            ("cpu", "cpu.cfs_period_us", "100000"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.shares", "2597"),
            ("pids", "pids.max", "16"),
            ("blkio", "blkio.weight", "1000"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn weights_convert_like_systemd_at_the_ends() {
        assert_eq!(cpu::shares_of_weight(1), 2);
        assert_eq!(cpu::shares_of_weight(10000), 262144);
        assert_eq!(cpu::weight_of_shares(2), 1);
        assert_eq!(cpu::weight_of_shares(262144), 10000);
        assert_eq!(cpu::weight_of_shares(cpu::shares_of_weight(100)), 100);
        assert_eq!(blkio::blkio_of_weight(1), 10);
        assert_eq!(blkio::weight_of_blkio(10), 1);
        assert_eq!(blkio::weight_of_blkio(1000), 10000);
    }

    #[test]
    fn what_v1_cannot_express_is_refused_by_name() {
        let mut l = Limits::new();
        l.memory_high(SizeLimit::Bytes(1));
        assert!(apply(&l).unwrap_err().to_string().contains("memory_high"));
        let mut l = Limits::new();
        l.memory_oom_group(true);
        assert!(
            apply(&l)
                .unwrap_err()
                .to_string()
                .contains("memory_oom_group")
        );
        let mut l = Limits::new();
        l.memory_swap_max(SizeLimit::Bytes(0));
        assert!(apply(&l).unwrap_err().to_string().contains("memory_max"));
    }

    #[test]
    fn v1_reads_back_and_reports_statistics() {
        let mem = FakeCgroup::new("v1mem");
        mem.file("memory.limit_in_bytes", "67108864\n")
            .file("memory.soft_limit_in_bytes", "9223372036854771712\n")
            .file("memory.memsw.limit_in_bytes", "67108864\n")
            .file("memory.usage_in_bytes", "4096\n")
            .file("memory.max_usage_in_bytes", "8192\n")
            .file(
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            );
        let cpu = FakeCgroup::new("v1cpu");
        cpu.file("cpu.cfs_quota_us", "-1\n")
            .file("cpu.cfs_period_us", "100000\n")
            .file("cpu.shares", "1024\n")
            .file(
                "cpu.stat",
                "nr_periods 5\nnr_throttled 2\nthrottled_time 3000000\n",
            )
            .file("cpuacct.usage", "5000000\n")
            .file("cpuacct.stat", "user 30\nsystem 20\n");
        let ctrl = |s: &[&str]| s.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let mut l = Limits::new();
        read_back(&ctrl(&["memory"]), mem.path(), &mut l);
        read_back(&ctrl(&["cpu", "cpuacct"]), cpu.path(), &mut l);
        assert_eq!(l.memory_max, Some(SizeLimit::Bytes(64 << 20)));
        assert_eq!(l.memory_low, Some(SizeLimit::Max));
        assert_eq!(l.memory_swap_max, Some(SizeLimit::Bytes(0)));
        assert_eq!(l.cpu_max, Some(CpuMax::unlimited()));
        assert_eq!(l.cpu_weight, Some(cpu::weight_of_shares(1024)));
        let mut s = Statistics::default();
        stats(&ctrl(&["memory"]), mem.path(), "memory", &mut s);
        stats(
            &ctrl(&["cpu", "cpuacct"]),
            cpu.path(),
            "cpu,cpuacct",
            &mut s,
        );
        assert_eq!(
            (s.memory_current, s.memory_peak, s.oom_kill),
            (Some(4096), Some(8192), Some(3))
        );
        assert_eq!(s.cpu_usage_usec, Some(5000));
        assert_eq!(
            (s.cpu_user_usec, s.cpu_system_usec),
            (Some(300_000), Some(200_000))
        );
        assert_eq!(
            (s.cpu_nr_throttled, s.cpu_throttled_usec),
            (Some(2), Some(3000))
        );
        assert!(
            s.raw.contains_key("memory/memory.oom_control"),
            "{:?}",
            s.raw.keys()
        );
    }
}
