//! cgroups on the real kernel: limits take effect, statistics report them, teardown leaves
//! nothing (no process, no directory), even when the owner is SIGKILLed.
//!
//! Every test creates its cgroups only under `./muontrap-test-<unique>` — relative to this
//! test process's *own* cgroup in each hierarchy — and proves at the end that no process with
//! its marker and no directory of that name is left. Tests that need what this machine lacks
//! (root, a controller, cgroup v2) call `skip`, so they are visible; they run in the pure-v2
//! VM (`scripts/qemu/`).

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use muontrap::cgroup::{CgroupError, CpuMax, Layout, LayoutKind, Limits, PidsLimit, SizeLimit};
use muontrap::{Command, Stdio};
use muontrap_tests::{
    TestId, example_binary, fixture, skip, skip_needs_v1, skip_needs_v2, wait_for_count,
    wait_for_line, wait_until_gone,
};

const READY: Duration = Duration::from_secs(20);
const GONE: Duration = Duration::from_secs(10);

/// A test's private cgroup base, `./muontrap-test-<unique>`, in every hierarchy.
struct TestCgroup {
    name: String,
    layout: Layout,
}

impl TestCgroup {
    /// `None` (after a visible skip) when cgroups cannot be created here.
    fn new(tag: &str) -> Option<TestCgroup> {
        if !rustix::process::geteuid().is_root() {
            skip("creating cgroups needs root");
            return None;
        }
        let layout = match Layout::detect() {
            Ok(l) => l,
            Err(e) => {
                skip(&format!("no cgroups: {e}"));
                return None;
            }
        };
        let name = format!(
            "muontrap-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Some(TestCgroup { name, layout })
    }

    /// The `cgroup_base` to give muontrap.
    fn base(&self) -> String {
        format!("./{}", self.name)
    }

    /// Our own cgroup directory in every hierarchy.
    fn own_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let (Some(m), Some(own)) = (&self.layout.unified, &self.layout.own_unified) {
            dirs.extend(m.dir_of(own));
        }
        for (h, own) in self.layout.v1.iter().zip(&self.layout.own_v1) {
            if let Some(own) = own {
                dirs.extend(h.mount.dir_of(own));
            }
        }
        dirs
    }

    /// Directories named after this test that exist now.
    fn leftovers(&self) -> Vec<PathBuf> {
        self.own_dirs()
            .into_iter()
            .map(|d| d.join(&self.name))
            .filter(|d| d.exists())
            .collect()
    }

    /// Proves that no directory of this test is left (waits a little: teardown may still be
    /// running in a keeper whose owner was killed).
    fn assert_no_leftovers(&self) {
        let deadline = Instant::now() + GONE;
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cgroup directories left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether `controller` can be used here (a v1 hierarchy, or listed at the v2 root).
    fn has(&self, controller: &str) -> bool {
        match self.layout.kind() {
            LayoutKind::V2 => self.layout.unified.as_ref().is_some_and(|m| {
                std::fs::read_to_string(m.mount_point.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|c| c == controller)
            }),
            _ => self.layout.v1_index(controller).is_some(),
        }
    }
}

impl Drop for TestCgroup {
    /// Best effort, so a failed test does not leave junk for the next run; the assertions
    /// above are what prove teardown worked.
    fn drop(&mut self) {
        // A test that failed may still have commands whose keepers are tearing their leaves
        // down (dropping a `Child` does not block), so retry for a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for dir in self.leftovers() {
                let mut all: Vec<PathBuf> = Vec::new();
                collect_dirs(&dir, &mut all);
                all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                for d in all {
                    let _ = std::fs::remove_dir(d);
                }
            }
            if self.leftovers().is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn collect_dirs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// A contained `sh -c SCRIPT` with the test marker, stdout piped.
fn shell(id: &TestId, cg: &TestCgroup, limits: Limits, script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script])
        .env(id.env_pair().0, id.env_pair().1)
        .env("FIXTURE", fixture())
        .stdout(Stdio::piped())
        .delay_to_sigkill(Duration::from_millis(100))
        .cgroup_base(cg.base())
        .cgroup_limits(limits);
    cmd
}

/// Spawns, or skips when the machine cannot provide a controller the test needs.
fn spawn_or_skip(cmd: &mut Command) -> Option<muontrap::Child> {
    match cmd.spawn() {
        Ok(c) => Some(c),
        Err(muontrap::Error::Cgroup(e @ CgroupError::MissingController { .. })) => {
            skip(&format!("{e}"));
            None
        }
        Err(e) => panic!("spawn failed: {e} ({e:?})"),
    }
}

fn finish(mut child: muontrap::Child, id: &TestId, cg: &TestCgroup) {
    let _ = child.terminate();
    assert_all_gone(id, cg);
}

/// No process with the test's marker and no directory of the test is left (waiting a little).
fn assert_all_gone(id: &TestId, cg: &TestCgroup) {
    assert_processes_gone(id);
    cg.assert_no_leftovers();
}

/// No process with the test's marker is left (waiting a little).
fn assert_processes_gone(id: &TestId) {
    if let Err(left) = wait_until_gone(id, GONE) {
        panic!("processes left: {left:?}");
    }
}

/// The v2 line (`0::/path`) of `/proc/<pid>/cgroup` text.
fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

#[test]
fn the_command_is_cloned_straight_into_the_v2_cgroup() {
    use muontrap::sys::exec::{self, ExecPlan, FdAction};
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let Some(cg) = TestCgroup::new("clone-into") else {
        return;
    };
    let (Some(mount), Some(own)) = (&cg.layout.unified, &cg.layout.own_unified) else {
        skip("no cgroup v2 hierarchy to clone into");
        return;
    };
    let dir = mount.dir_of(own).expect("our v2 directory").join(&cg.name);
    std::fs::create_dir(&dir).expect("mkdir the test cgroup");
    let dir_fd = std::fs::File::open(&dir).expect("open the cgroup directory");
    // Where the v2 `cgroup.procs` descriptor belongs, a read-only one: writing the pid to it
    // fails, so the spawn succeeds only if the child was born inside and skipped that write.
    let unwritable = std::fs::File::open("/dev/null").expect("/dev/null");
    let (read_end, write_end) = std::io::pipe().expect("pipe");
    let id = TestId::new("clone-into");
    let marker = CString::new(format!("{}={}", muontrap_tests::MARKER_VAR, id.as_str())).unwrap();
    let mut plan = ExecPlan::new(
        c"/bin/cat".into(),
        vec![c"cat".into(), c"/proc/self/cgroup".into()],
        vec![marker],
    );
    plan.stdio(1, FdAction::Dup(write_end.as_raw_fd()))
        .join_cgroups(&[unwritable.as_raw_fd()], Some(dir_fd.as_raw_fd()));
    let spawned = exec::spawn(&plan);
    drop(write_end);
    let mut out = String::new();
    let _ = (&read_end).read_to_string(&mut out);
    if let Ok(pid) = spawned {
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        );
    }
    std::fs::remove_dir(&dir).expect("rmdir the emptied test cgroup");
    match spawned {
        Ok(_) => {}
        Err(exec::SpawnError::Child(f)) if f.stage == exec::ExecStage::Cgroup => {
            panic!("not born inside: the child fell back to writing cgroup.procs ({f:?})")
        }
        Err(e) => panic!("spawn: {e:?}"),
    }
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let expected = format!(
        "{}/{}",
        v2_path(&ours).expect("a v2 line").trim_end_matches('/'),
        cg.name
    );
    assert_eq!(v2_path(&out), Some(expected.as_str()), "{out}");
    cg.assert_no_leftovers();
}

#[test]
fn memory_limit_oom_kills_the_hog_and_statistics_report_it() {
    let Some(cg) = TestCgroup::new("oom") else {
        return;
    };
    if !cg.has("memory") {
        return skip("no memory controller");
    }
    let id = TestId::new("cg-oom");
    let mut limits = Limits::new();
    limits
        .memory_max(SizeLimit::Bytes(32 << 20))
        .memory_swap_max(SizeLimit::Bytes(0));
    let mut cmd = shell(
        &id,
        &cg,
        limits,
        r#""$FIXTURE" alloc 256; echo "hog $?"; exec "$FIXTURE" forever"#,
    );
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    let line = wait_for_line(&out, "hog", READY).unwrap();
    assert_eq!(line, "hog 137", "the hog must die by SIGKILL (OOM)");
    wait_for_line(&out, "ready", READY).unwrap();
    let handle = child.cgroup().expect("a cgroup").clone();
    let stats = handle.statistics().unwrap();
    assert!(
        stats.oom_kill.unwrap_or(0) >= 1,
        "the OOM kill is reported: {stats:?}"
    );
    let peak = stats.memory_peak.expect("peak memory is reported");
    assert!(peak <= 33 << 20, "peak {peak} stays under the limit");
    assert!(peak >= 16 << 20, "peak {peak} shows the hog's allocation");
    assert_eq!(
        handle.config().unwrap().get_memory_max(),
        Some(SizeLimit::Bytes(32 << 20)),
        "the limit reads back typed"
    );
    finish(child, &id, &cg);
    assert!(
        handle.dirs().all().all(|d| !d.exists()),
        "the cgroup is gone after wait"
    );
    assert!(handle.config().is_err(), "settings cannot be read any more");
    let last = handle.statistics().expect("the final statistics");
    assert_eq!(Some(&last), handle.final_statistics());
    assert!(last.oom_kill.unwrap_or(0) >= 1, "final: {last:?}");
}

#[test]
fn final_statistics_show_the_oom_kill_after_wait() {
    let Some(cg) = TestCgroup::new("oomfinal") else {
        return;
    };
    if !cg.has("memory") {
        return skip("no memory controller");
    }
    let id = TestId::new("cg-oomfinal");
    let mut limits = Limits::new();
    limits
        .memory_max(SizeLimit::Bytes(32 << 20))
        .memory_swap_max(SizeLimit::Bytes(0));
    // The hog is OOM-killed; the shell reports it and ends on its own.
    let mut cmd = shell(&id, &cg, limits, r#""$FIXTURE" alloc 256; echo "hog $?""#);
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let handle = child.cgroup().expect("a cgroup").clone();
    assert!(child.cgroup_statistics().is_none(), "not before the end");
    let out = child.stdout.take().unwrap();
    assert_eq!(wait_for_line(&out, "hog", READY).unwrap(), "hog 137");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the shell itself survived");
    assert!(
        handle.dirs().all().all(|d| !d.exists()),
        "the cgroup was removed before wait returned"
    );
    let last = child
        .cgroup_statistics()
        .expect("final statistics after wait");
    assert!(last.oom_kill.unwrap_or(0) >= 1, "the OOM kill: {last:?}");
    let peak = last.memory_peak.expect("peak memory is reported");
    assert!(peak >= 16 << 20, "peak {peak} shows the hog's allocation");
    assert!(peak <= 33 << 20, "peak {peak} stays under the limit");
    assert!(last.cpu_usage_usec.is_some(), "CPU time: {last:?}");
    assert!(!last.raw.is_empty(), "the raw files came along");
    assert_eq!(
        handle.statistics().unwrap(),
        *last,
        "every clone of the handle sees them"
    );
    assert_all_gone(&id, &cg);
}

#[test]
fn final_statistics_keep_the_peak_of_a_killed_tree() {
    let Some(cg) = TestCgroup::new("peak") else {
        return;
    };
    if !cg.has("memory") {
        return skip("no memory controller");
    }
    let id = TestId::new("cg-peak");
    let mut limits = Limits::new();
    limits.memory_max(SizeLimit::Bytes(256 << 20));
    let mut cmd = shell(&id, &cg, limits, r#"exec "$FIXTURE" alloc 48"#);
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let last = child
        .cgroup_statistics()
        .expect("final statistics after wait");
    let peak = last.memory_peak.expect("peak memory is reported");
    assert!(peak >= 48 << 20, "peak {peak} covers the 48 MiB allocation");
    assert_eq!(last.oom_kill.unwrap_or(0), 0, "no OOM kill: {last:?}");
    assert_all_gone(&id, &cg);
}

#[test]
fn pids_limit_caps_a_fork_fanout() {
    let Some(cg) = TestCgroup::new("pids") else {
        return;
    };
    if !cg.has("pids") {
        return skip("no pids controller");
    }
    let id = TestId::new("cg-pids");
    let mut limits = Limits::new();
    limits.pids_max(PidsLimit::Count(8));
    let mut cmd = shell(
        &id,
        &cg,
        limits,
        r#""$FIXTURE" fanout 50; echo "fanout $?"; exec "$FIXTURE" forever"#,
    );
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    let line = wait_for_line(&out, "fanout", READY).unwrap();
    assert_ne!(
        line, "fanout 0",
        "50 processes cannot start under pids.max 8"
    );
    wait_for_line(&out, "ready", READY).unwrap();
    let marked = muontrap_tests::marked_processes(&id).len();
    assert!(marked <= 8, "{marked} processes exist under pids.max 8");
    let stats = child.cgroup().unwrap().statistics().unwrap();
    assert!(
        stats.pids_limit_hits.unwrap_or(0) >= 1,
        "refused forks are counted: {stats:?}"
    );
    assert!(stats.pids_current.unwrap() <= 8);
    finish(child, &id, &cg);
}

#[test]
fn cpu_quota_throttles_a_spinner() {
    let Some(cg) = TestCgroup::new("cpu") else {
        return;
    };
    if !cg.has("cpu") {
        return skip("no cpu controller");
    }
    let id = TestId::new("cg-cpu");
    let mut limits = Limits::new();
    limits.cpu_max(CpuMax::new(10_000, 100_000));
    let mut cmd = shell(
        &id,
        &cg,
        limits,
        r#"echo ready; exec "$FIXTURE" spin 60000"#,
    );
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    let handle = child.cgroup().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = handle.statistics().unwrap();
        if s.cpu_nr_throttled.unwrap_or(0) >= 3 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        stats.cpu_nr_throttled.unwrap_or(0) >= 3,
        "a spinner under a 10% quota is throttled: {stats:?}"
    );
    assert!(stats.cpu_throttled_usec.unwrap_or(0) > 0);
    finish(child, &id, &cg);
}

#[test]
fn freeze_stops_progress_and_thaw_resumes_it() {
    let Some(cg) = TestCgroup::new("freeze") else {
        return;
    };
    let id = TestId::new("cg-freeze");
    let mut cmd = shell(
        &id,
        &cg,
        Limits::new(),
        r#"echo ready; exec "$FIXTURE" spin 60000"#,
    );
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    let handle = child.cgroup().unwrap().clone();
    let usage = || {
        handle
            .statistics()
            .unwrap()
            .cpu_usage_usec
            .expect("cpu usage")
    };
    match handle.freeze() {
        Ok(()) => {}
        Err(CgroupError::NoFreezer) => {
            finish(child, &id, &cg);
            return skip("no freezer here");
        }
        Err(e) => panic!("freeze: {e}"),
    }
    let frozen_at = usage();
    // Proving that nothing happens needs an interval; 200 ms of a spinning process is
    // ~200000 µs of CPU if it were running.
    std::thread::sleep(Duration::from_millis(200));
    let later = usage();
    assert!(
        later - frozen_at < 5_000,
        "frozen: {frozen_at} → {later} µs of CPU"
    );
    handle.thaw().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while usage() < later + 50_000 {
        assert!(Instant::now() < deadline, "no progress after thaw");
        std::thread::sleep(Duration::from_millis(10));
    }
    finish(child, &id, &cg);
}

#[test]
fn teardown_of_1000_processes_leaves_nothing() {
    let Some(cg) = TestCgroup::new("k1000") else {
        return;
    };
    let id = TestId::new("cg-1000");
    let mut cmd = Command::new(fixture());
    cmd.args(["fanout", "1000"])
        .env(id.env_pair().0, id.env_pair().1)
        .stdout(Stdio::piped())
        .delay_to_sigkill(Duration::ZERO)
        .cgroup_base(cg.base());
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", Duration::from_secs(60)).unwrap();
    assert_eq!(wait_for_count(&id, 1000, READY), Ok(1000));
    let handle = child.cgroup().unwrap().clone();
    assert_eq!(handle.pids().len(), 1000, "all 1000 were born inside");
    let started = Instant::now();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let took = started.elapsed();
    eprintln!("teardown of 1000 processes with a cgroup: {took:?}");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    if let Err(left) = wait_until_gone(&id, GONE) {
        panic!("processes left: {}", left.len());
    }
    assert!(handle.dirs().all().all(|d| !d.exists()), "removed at once");
    cg.assert_no_leftovers();
}

#[test]
fn descendants_are_born_inside_every_hierarchy() {
    let Some(cg) = TestCgroup::new("born") else {
        return;
    };
    let id = TestId::new("cg-born");
    let mut cmd = shell(&id, &cg, Limits::new(), r#"exec "$FIXTURE" daemon --stay"#);
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    let daemon = wait_for_line(&out, "daemon", READY).unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    let daemon_pid: i32 = daemon.split_whitespace().nth(1).unwrap().parse().unwrap();
    let handle = child.cgroup().unwrap().clone();
    for dir in handle.dirs().all() {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        let pids: Vec<i32> = procs.lines().filter_map(|p| p.parse().ok()).collect();
        assert!(
            pids.contains(&(child.id() as i32)),
            "main in {}",
            dir.display()
        );
        assert!(
            pids.contains(&daemon_pid),
            "setsid daemon in {}",
            dir.display()
        );
    }
    finish(child, &id, &cg);
}

#[test]
fn owner_sigkilled_leaves_no_directory_and_no_process() {
    let Some(cg) = TestCgroup::new("owner") else {
        return;
    };
    let id = TestId::new("cg-owner");
    let mut owner = std::process::Command::new(example_binary("contain"))
        .args([
            "--".as_ref(),
            fixture().as_os_str(),
            "tree".as_ref(),
            "5".as_ref(),
        ])
        .env(id.env_pair().0, id.env_pair().1)
        .env("CONTAIN_CGROUP_BASE", cg.base())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = owner.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    // The owner, its keeper server and keepers carry the marker too (they inherit it).
    assert!(
        wait_for_count(&id, 7, READY).is_ok(),
        "owner + 6 fixture processes"
    );
    let made: Vec<PathBuf> = cg
        .own_dirs()
        .into_iter()
        .map(|d| d.join(&cg.name))
        .filter(|d| d.exists())
        .collect();
    assert!(!made.is_empty(), "the keeper created the cgroup");
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert_all_gone(&id, &cg);
}

#[test]
fn bad_setting_is_a_clear_error_and_leaves_no_directory() {
    let Some(cg) = TestCgroup::new("bad") else {
        return;
    };
    if !cg.has("pids") {
        return skip("no pids controller");
    }
    let id = TestId::new("cg-bad");
    let mut limits = Limits::new();
    limits.set("pids.max", "bogus");
    let mut cmd = Command::new(fixture());
    cmd.args(["exit", "0"])
        .env(id.env_pair().0, id.env_pair().1)
        .cgroup_base(cg.base())
        .cgroup_limits(limits);
    let err = cmd.spawn().expect_err("the kernel refuses 'bogus'");
    let text = err.to_string();
    assert!(
        text.contains("'bogus'") && text.contains("pids.max"),
        "the error names the value and the file: {text}"
    );
    assert!(matches!(
        err,
        muontrap::Error::Cgroup(CgroupError::Write { .. })
    ));
    assert!(wait_until_gone(&id, GONE).is_ok(), "nothing was started");
    cg.assert_no_leftovers();
}

#[test]
fn a_sigkilled_keeper_leaves_no_cgroup_behind() {
    // The keeper removes the cgroup at the end; if it is SIGKILLed instead, its keeper server
    // kills the orphaned tree and removes the directories the keeper had created.
    let Some(cg) = TestCgroup::new("keeper-kill") else {
        return;
    };
    let id = TestId::new("cg-keeper-kill");
    let mut cmd = shell(&id, &cg, Limits::new(), "exec \"$FIXTURE\" grandchildren 3");
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let stdout = child.stdout.as_ref().expect("piped");
    wait_for_line(stdout, "ready", READY).expect("the tree is up");
    wait_for_count(&id, 4, READY).expect("4 processes");
    assert!(
        !cg.leftovers().is_empty(),
        "the cgroup exists while it runs"
    );
    muontrap_tests::sigkill_keeper_of(child.id() as i32);
    assert_all_gone(&id, &cg);
    assert!(matches!(child.wait(), Err(muontrap::Error::KeeperLost)));
}

#[test]
fn v1_refuses_what_it_cannot_express() {
    let Some(cg) = TestCgroup::new("v1no") else {
        return;
    };
    if cg.layout.kind() == LayoutKind::V2 {
        return skip_needs_v1("cgroup v2 can express memory.high");
    }
    let mut limits = Limits::new();
    limits.memory_high(SizeLimit::Bytes(1 << 20));
    let err = Command::new(fixture())
        .args(["exit", "0"])
        .cgroup_base(cg.base())
        .cgroup_limits(limits)
        .spawn()
        .expect_err("memory_high has no v1 equivalent");
    assert!(err.to_string().contains("memory_high"), "{err}");
    cg.assert_no_leftovers();
}

#[test]
fn parent_directory_components_are_rejected() {
    let Some(cg) = TestCgroup::new("dotdot") else {
        return;
    };
    for path in ["./../escape", "../escape", "a/../../escape"] {
        let err = Command::new(fixture())
            .args(["exit", "0"])
            .cgroup_path(path)
            .spawn()
            .expect_err("'..' escapes");
        assert!(
            matches!(err, muontrap::Error::Cgroup(CgroupError::BadPath { .. })),
            "{path}: {err}"
        );
        assert!(err.to_string().contains("'..'"), "{err}");
    }
    cg.assert_no_leftovers();
}

#[test]
fn cgroup_path_must_not_exist_and_is_removed() {
    let Some(cg) = TestCgroup::new("path") else {
        return;
    };
    let id = TestId::new("cg-path");
    let path = format!("{}/exact", cg.base());
    let mut first = Command::new(fixture());
    first
        .arg("forever")
        .env(id.env_pair().0, id.env_pair().1)
        .stdout(Stdio::piped())
        .cgroup_path(&path);
    let Some(mut child) = spawn_or_skip(&mut first) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    assert!(
        child
            .cgroup()
            .unwrap()
            .path()
            .ends_with(format!("{}/exact", cg.name))
    );
    let err = Command::new(fixture())
        .args(["exit", "0"])
        .cgroup_path(&path)
        .spawn()
        .expect_err("the cgroup exists");
    assert!(
        matches!(
            err,
            muontrap::Error::Cgroup(CgroupError::AlreadyExists { .. })
        ),
        "{err}"
    );
    finish(child, &id, &cg);
}

#[test]
fn v2_only_settings_apply_and_read_back() {
    let Some(cg) = TestCgroup::new("v2only") else {
        return;
    };
    if cg.layout.kind() != LayoutKind::V2 {
        return skip_needs_v2("memory.high and memory.oom.group need cgroup v2");
    }
    if !cg.has("memory") || !cg.has("cpu") {
        return skip("needs the memory and cpu controllers");
    }
    let id = TestId::new("cg-v2only");
    let mut limits = Limits::new();
    limits
        .memory_high(SizeLimit::Bytes(64 << 20))
        .memory_oom_group(true)
        .cpu_weight(50u16);
    let mut cmd = shell(&id, &cg, limits, r#"exec "$FIXTURE" forever"#);
    let Some(mut child) = spawn_or_skip(&mut cmd) else {
        return;
    };
    let out = child.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    let config = child.cgroup().unwrap().config().unwrap();
    assert_eq!(config.get_memory_high(), Some(SizeLimit::Bytes(64 << 20)));
    assert_eq!(config.get_memory_oom_group(), Some(true));
    assert_eq!(config.get_cpu_weight(), Some(50));
    finish(child, &id, &cg);
}

#[test]
fn a_shared_base_in_use_does_not_delay_the_end() {
    let Some(cg) = TestCgroup::new("sharedbase") else {
        return;
    };
    let id = TestId::new("cg-sharedbase");
    // `first` creates the base (it does not exist yet); `second` gets a sibling leaf in it.
    let mut first = shell(&id, &cg, Limits::new(), "echo ready; read x; exit 0");
    first.stdin(Stdio::piped());
    let Some(mut first) = spawn_or_skip(&mut first) else {
        return;
    };
    let out = first.stdout.take().unwrap();
    wait_for_line(&out, "ready", READY).unwrap();
    let mut second = shell(
        &id,
        &cg,
        Limits::new(),
        r#"echo ready; exec "$FIXTURE" forever"#,
    );
    let mut second = second.spawn().unwrap();
    let out2 = second.stdout.take().unwrap();
    wait_for_line(&out2, "ready", READY).unwrap();
    let started = Instant::now();
    let status = first.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < Duration::from_secs(2),
        "the base (busy with the second command's cgroup) delayed the first one's end: {took:?}"
    );
    assert!(
        second.cgroup().unwrap().dirs().all().all(|d| d.exists()),
        "the second command's cgroup is untouched"
    );
    let leaves: Vec<PathBuf> = second
        .cgroup()
        .unwrap()
        .dirs()
        .all()
        .map(Into::into)
        .collect();
    let _ = second.terminate();
    assert_processes_gone(&id);
    assert!(leaves.iter().all(|d| !d.exists()), "the leaves are removed");
    // The base was created by the first command, which could not remove it while the second
    // one's leaf was in it; it stays, empty (dropping `cg` removes it).
    for base in cg.leftovers() {
        assert_eq!(
            std::fs::read_dir(&base)
                .unwrap()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .count(),
            0,
            "{base:?} is empty"
        );
    }
}

/// The port helper's own cgroup flags (`-g/-c/-s`, contract section 5) end to end: the
/// command runs inside `/sys/fs/cgroup/<group>` with the setting applied, and the directory is
/// gone when the helper exits. The contract requires cgroup v2, so this runs in the VM.
#[test]
fn port_mode_group_controller_and_set_work_on_v2() {
    if !rustix::process::geteuid().is_root() {
        return skip("creating cgroups needs root");
    }
    match Layout::detect() {
        Ok(l) if l.kind() == LayoutKind::V2 => {}
        Ok(_) => {
            return skip_needs_v2("port mode -g/-c/-s needs cgroup v2 (the C helper's contract)");
        }
        Err(e) => return skip(&format!("no cgroups: {e}")),
    }
    let id = TestId::new("cg-port");
    let group = format!("muontrap-test-port-{}", std::process::id());
    let dir = PathBuf::from("/sys/fs/cgroup").join(&group);
    let script = format!("cat /proc/self/cgroup; cat /sys/fs/cgroup/{group}/pids.max");
    let mut helper = std::process::Command::new(muontrap_tests::target_binary("muontrap"))
        .args([
            "-g",
            &group,
            "-c",
            "pids",
            "-s",
            "pids.max=7",
            "--capture-output",
        ])
        .args(["--", "/bin/sh", "-c", &script])
        .env(muontrap_tests::MARKER_VAR, id.as_str())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("muontrap");
    let out = helper.stdout.take().expect("piped");
    let cgroup_line = wait_for_line(&out, "0::", READY).expect("the command's cgroup");
    assert_eq!(cgroup_line.trim(), format!("0::/{group}"));
    let limit = wait_for_line(&out, "7", READY).expect("pids.max as set");
    assert_eq!(limit.trim(), "7");
    // Acknowledge what arrived, as the Erlang side does (each byte b acks b + 1 bytes); the
    // helper then exits with the command's status once the command is done.
    let acks = muontrap_tests::encode_acks(cgroup_line.len() + 1 + limit.len() + 1);
    let mut stdin = helper.stdin.take().expect("piped");
    std::io::Write::write_all(&mut stdin, &acks).expect("acks");
    let status = helper.wait().expect("wait");
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut helper.stderr.take().expect("piped"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "helper exit; stderr: {stderr}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !dir.exists(),
        "{} removed (stderr: {stderr}; contents {left:?})",
        dir.display()
    );
    assert!(wait_until_gone(&id, GONE).is_ok(), "nothing left");
}
