//! cgroup v2: one file per controller, each with the same three functions —
//! `apply` (typed [`Limits`] → file writes), `stats` (files → [`Statistics`]) and `read_back`
//! (files → [`Limits`]). Everything here works on a directory given as a parameter, so it is
//! tested against a temp-dir fixture.

use std::path::Path;

use super::limits::Limits;
use super::stats::{Statistics, parse_pressure};
use super::{Write, fs};

pub mod cpu;
pub mod cpuset;
pub mod io;
pub mod memory;
pub mod pids;

/// The file writes for `limits`, typed settings first (in controller order), raw ones last.
pub fn apply(limits: &Limits) -> Vec<Write> {
    let mut out = Vec::new();
    memory::apply(limits, &mut out);
    cpu::apply(limits, &mut out);
    pids::apply(limits, &mut out);
    cpuset::apply(limits, &mut out);
    io::apply(limits, &mut out);
    for (k, v) in &limits.raw {
        out.push(Write::new(controller_of(k), k, v.clone()));
    }
    out
}

/// The controller a v2 file belongs to (`memory.max` → `memory`; `cgroup.*` is the core).
pub fn controller_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// Statistics of the v2 cgroup `dir`.
pub fn stats(dir: &Path, s: &mut Statistics) {
    memory::stats(dir, s);
    cpu::stats(dir, s);
    pids::stats(dir, s);
    core_stats(dir, s);
}

/// The v2 files that exist without any controller: `cgroup.stat`, the core part of `cpu.stat`
/// (`usage_usec`, `user_usec`, `system_usec`) and the pressure files. On a hybrid machine
/// these are what the controller-less v2 hierarchy offers.
pub fn core_stats(dir: &Path, s: &mut Statistics) {
    for res in ["cpu", "memory", "io"] {
        let file = format!("{res}.pressure");
        if let Some(text) = fs::read_opt(dir, &file) {
            s.pressure.insert(res.to_owned(), parse_pressure(&text));
            s.raw.insert(file, text);
        }
    }
    for file in ["cgroup.stat", "cgroup.events"] {
        if let Some(text) = fs::read_opt(dir, file) {
            s.raw.insert(file.to_owned(), text);
        }
    }
}

/// The settings of the v2 cgroup `dir`, read back.
pub fn read_back(dir: &Path) -> Limits {
    let mut l = Limits::default();
    memory::read_back(dir, &mut l);
    cpu::read_back(dir, &mut l);
    pids::read_back(dir, &mut l);
    cpuset::read_back(dir, &mut l);
    io::read_back(dir, &mut l);
    l
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A fake v2 cgroup directory in a temp dir.
    use std::path::{Path, PathBuf};

    pub struct FakeCgroup(pub PathBuf);

    impl FakeCgroup {
        pub fn new(tag: &str) -> FakeCgroup {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "mt-fakecg-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            FakeCgroup(dir)
        }
        pub fn file(&self, name: &str, text: &str) -> &Self {
            let p = self.0.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(p, text).unwrap();
            self
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for FakeCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::FakeCgroup;
    use super::*;
    use crate::cgroup::limits::{CpuMax, PidsLimit};
    use crate::cgroup::size::SizeLimit;

    #[test]
    fn typed_limits_become_v2_files() {
        let mut l = Limits::new();
        l.memory_max(SizeLimit::Bytes(64 << 20))
            .memory_high(SizeLimit::Max)
            .memory_swap_max(SizeLimit::Bytes(0))
            .memory_oom_group(true)
            .cpu_max(CpuMax::new(50_000, 100_000))
            .cpu_weight(200u16)
            .pids_max(PidsLimit::Count(16))
            .cpuset_cpus("0")
            .io_weight(300u16)
            .set("memory.swappiness", "0");
        let w: Vec<(String, String)> = apply(&l).into_iter().map(|w| (w.file, w.value)).collect();
        let expect = [
            ("memory.max", "67108864"),
            ("memory.high", "max"),
            ("memory.swap.max", "0"),
            ("memory.oom.group", "1"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "200"),
            ("pids.max", "16"),
            ("cpuset.cpus", "0"),
            ("io.weight", "default 300"),
            ("memory.swappiness", "0"),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(w, expect);
    }

    #[test]
    fn settings_read_back_in_the_same_typed_form() {
        let cg = FakeCgroup::new("v2rb");
        cg.file("memory.max", "67108864\n")
            .file("memory.high", "max\n")
            .file("memory.low", "0\n")
            .file("memory.swap.max", "max\n")
            .file("memory.oom.group", "1\n")
            .file("cpu.max", "max 50000\n")
            .file("cpu.weight", "100\n")
            .file("pids.max", "max\n")
            .file("cpuset.cpus", "0-1\n")
            .file("cpuset.mems", "\n")
            .file("io.weight", "default 100\n");
        let l = read_back(cg.path());
        assert_eq!(l.memory_max, Some(SizeLimit::Bytes(64 << 20)));
        assert_eq!(l.memory_high, Some(SizeLimit::Max));
        assert_eq!(l.memory_low, Some(SizeLimit::Bytes(0)));
        assert_eq!(l.memory_oom_group, Some(true));
        assert_eq!(
            l.cpu_max,
            Some(CpuMax {
                quota_us: None,
                period_us: 50_000
            })
        );
        assert_eq!(l.cpu_weight, Some(100));
        assert_eq!(l.pids_max, Some(PidsLimit::Max));
        assert_eq!(l.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(l.cpuset_mems.as_deref(), Some(""));
        assert_eq!(l.io_weight, Some(100));
    }

    #[test]
    fn statistics_from_v2_files() {
        let cg = FakeCgroup::new("v2st");
        cg.file("memory.current", "4096\n")
            .file("memory.peak", "8192\n")
            .file(
                "memory.events",
                "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
            )
            .file(
                "cpu.stat",
                "usage_usec 300\nuser_usec 200\nsystem_usec 100\nnr_periods 10\nnr_throttled 4\nthrottled_usec 900\n",
            )
            .file("pids.current", "3\n")
            .file("pids.peak", "7\n")
            .file("pids.events", "max 2\n")
            .file(
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
            );
        let mut s = Statistics::default();
        stats(cg.path(), &mut s);
        assert_eq!(s.memory_current, Some(4096));
        assert_eq!(s.memory_peak, Some(8192));
        assert_eq!((s.oom, s.oom_kill), (Some(2), Some(1)));
        assert_eq!(s.cpu_usage_usec, Some(300));
        assert_eq!((s.cpu_user_usec, s.cpu_system_usec), (Some(200), Some(100)));
        assert_eq!(
            (s.cpu_nr_periods, s.cpu_nr_throttled, s.cpu_throttled_usec),
            (Some(10), Some(4), Some(900))
        );
        assert_eq!(
            (s.pids_current, s.pids_peak, s.pids_limit_hits),
            (Some(3), Some(7), Some(2))
        );
        assert_eq!(s.pressure["memory"].some.unwrap().total_usec, 5);
        assert!(s.raw.contains_key("memory.events") && s.raw.contains_key("cpu.stat"));
    }
}
