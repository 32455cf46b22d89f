//! Marking process trees and proving they are gone.
//!
//! A test puts `MUONTRAP_TEST_ID=<unique value>` into the environment of what
//! it spawns. Every descendant inherits it, including ones that escape the
//! process group and session (daemons), so scanning `/proc/*/environ` finds
//! the whole tree no matter how it reparented itself. That is how a test
//! proves *absence*: no process carrying the marker is left.
//!
//! Zombies are the catch: once a process has exited its memory is freed, so
//! its `environ` reads as empty and the marker can no longer be seen. A
//! [`TestId`] therefore remembers every process (pid and start time) it has
//! seen carrying the marker, and keeps reporting that process while it exists
//! as a zombie. Scan once the tree is ready (for example with
//! [`wait_for_count`]) so that its members are remembered.
//!
//! Dropping a [`TestId`] kills what is left, through pidfds, so a failing
//! test never leaves processes behind and never signals a recycled pid.

use std::collections::HashMap;
use std::fmt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{Pid, PidfdFlags, Signal};

use crate::proc_scan::{ProcFs, ProcInfo, environ_contains};

/// Environment variable that marks every process a test creates.
pub const MARKER_VAR: &str = "MUONTRAP_TEST_ID";

/// How often the waiting functions re-scan `/proc`.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A unique marker value for one test's processes.
///
/// Dropping it SIGKILLs every live process still carrying the marker (it does
/// not reap them: they are not necessarily our children).
///
/// ```no_run
/// use muontrap_tests::{TestId, fixture, wait_until_gone};
/// use std::time::Duration;
///
/// let id = TestId::new("example");
/// let mut child = std::process::Command::new(fixture())
///     .arg("exit")
///     .arg("0")
///     .env(id.env_pair().0, id.env_pair().1)
///     .spawn()
///     .unwrap();
/// child.wait().unwrap();
/// wait_until_gone(&id, Duration::from_secs(5)).unwrap();
/// ```
pub struct TestId {
    value: String,
    /// `MUONTRAP_TEST_ID=<value>`, as it appears in `/proc/<pid>/environ`.
    entry: Vec<u8>,
    /// Processes seen carrying the marker: pid → start time.
    seen: Mutex<HashMap<i32, u64>>,
}

impl TestId {
    /// A marker value unique across processes and runs: `<name>-<pid>-<counter>-<nanos>`.
    pub fn new(name: &str) -> TestId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let value = format!(
            "{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let entry = format!("{MARKER_VAR}={value}").into_bytes();
        TestId {
            value,
            entry,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The marker value.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// `(MARKER_VAR, value)`, ready for `Command::env`.
    pub fn env_pair(&self) -> (&'static str, String) {
        (MARKER_VAR, self.value.clone())
    }

    /// Sets the marker in `command`'s environment.
    pub fn mark<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env(MARKER_VAR, &self.value)
    }

    /// Processes carrying the marker in `proc`, zombies of remembered ones included.
    fn scan(&self, proc: &ProcFs) -> Vec<ProcInfo> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = Vec::new();
        for pid in proc.pids() {
            let marked = proc
                .environ(pid)
                .is_some_and(|env| environ_contains(&env, &self.entry));
            let remembered = seen.get(&pid).copied();
            if !marked && remembered.is_none() {
                continue;
            }
            let Some(stat) = proc.stat(pid) else {
                continue;
            };
            if marked {
                seen.insert(pid, stat.start_time);
                found.push(stat.info);
            } else if remembered == Some(stat.start_time) {
                // Seen alive earlier, now exited: its environ is gone.
                found.push(stat.info);
            } else {
                // The pid was recycled by an unrelated process.
                seen.remove(&pid);
            }
        }
        found.sort_by_key(|p| p.pid);
        found
    }

    /// Whether the process at `pid` right now carries the marker.
    fn marks(&self, proc: &ProcFs, pid: i32) -> bool {
        proc.environ(pid)
            .is_some_and(|env| environ_contains(&env, &self.entry))
    }

    /// SIGKILLs every live process carrying the marker, re-scanning until
    /// none is left, as dropping does. Zombies are left to their parents.
    ///
    /// Each kill goes through a pidfd opened *before* re-checking the marker,
    /// so a pid recycled since the scan is never signalled.
    pub fn kill_all(&self) {
        self.kill_all_in(&ProcFs::system());
    }

    /// [`TestId::kill_all`] in `proc`. A process may fork while we kill, so
    /// this re-scans; it gives up after a few hundred rounds.
    fn kill_all_in(&self, proc: &ProcFs) {
        for _ in 0..500 {
            let live: Vec<i32> = self
                .scan(proc)
                .into_iter()
                .filter(|p| !p.is_zombie())
                .map(|p| p.pid)
                .collect();
            if live.is_empty() {
                return;
            }
            for pid in live {
                self.kill_verified(proc, pid);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILLs `pid` only if it still carries the marker. The pidfd pins the
    /// process before the check, so a pid recycled after the scan is never hit.
    fn kill_verified(&self, proc: &ProcFs, pid: i32) {
        let Some(pid_t) = Pid::from_raw(pid) else {
            return;
        };
        let Ok(pidfd) = rustix::process::pidfd_open(pid_t, PidfdFlags::empty()) else {
            return;
        };
        if self.marks(proc, pid) {
            let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
        }
    }
}

impl fmt::Debug for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TestId").field(&self.value).finish()
    }
}

impl fmt::Display for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl Drop for TestId {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Processes carrying `id`'s marker right now, sorted by pid.
///
/// Includes zombies of processes this `id` has seen alive before (see the
/// module docs). Processes that vanish or cannot be read are skipped.
pub fn marked_processes(id: &TestId) -> Vec<ProcInfo> {
    id.scan(&ProcFs::system())
}

/// Waits until no process (zombies included) carries `id`'s marker.
///
/// Re-scans `/proc` every 2 ms. Returns how long it took, or the processes
/// still left when `timeout` ran out. This is the "prove absence" primitive.
///
/// An orphaned zombie is only gone once the init process (or a subreaper)
/// reaps it, which some inits do lazily; allow a few seconds.
pub fn wait_until_gone(id: &TestId, timeout: Duration) -> Result<Duration, Vec<ProcInfo>> {
    let start = Instant::now();
    loop {
        let left = marked_processes(id);
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(left);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until at least `count` processes carry `id`'s marker.
///
/// Returns the number seen, or the last number seen when `timeout` ran out.
pub fn wait_for_count(id: &TestId, count: usize, timeout: Duration) -> Result<usize, usize> {
    let start = Instant::now();
    loop {
        let seen = marked_processes(id).len();
        if seen >= count {
            return Ok(seen);
        }
        if start.elapsed() >= timeout {
            return Err(seen);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc_scan::tests::{TempDir, stat_line};

    #[test]
    fn ids_are_unique_and_name_prefixed() {
        let a = TestId::new("same");
        let b = TestId::new("same");
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with("same-"));
        assert_eq!(a.env_pair(), (MARKER_VAR, a.as_str().to_owned()));
    }

    #[test]
    fn scan_finds_exact_marker_and_remembers_zombies() {
        let id = TestId::new("fake");
        let entry = format!("PATH=/bin\0{MARKER_VAR}={}\0", id.as_str());
        let other = format!("{MARKER_VAR}={}x\0", id.as_str());
        let root = TempDir::new("marker");
        root.fake_process(20, &stat_line(20, "top", 'S', 1, 100), entry.as_bytes());
        root.fake_process(21, &stat_line(21, "kid", 'S', 20, 101), entry.as_bytes());
        root.fake_process(
            22,
            &stat_line(22, "stranger", 'S', 1, 102),
            other.as_bytes(),
        );
        let proc = ProcFs::at(&root.0);
        let pids = |list: Vec<ProcInfo>| list.iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(pids(id.scan(&proc)), [20, 21]);

        // 21 exits: a zombie with an empty environ is still reported.
        root.fake_process(21, &stat_line(21, "kid", 'Z', 20, 101), b"");
        let found = id.scan(&proc);
        assert_eq!(pids(found.clone()), [20, 21]);
        assert!(found[1].is_zombie());

        // 21 is reaped and the pid reused by an unrelated process.
        root.fake_process(21, &stat_line(21, "new", 'S', 1, 555), b"");
        assert_eq!(pids(id.scan(&proc)), [20]);

        // 20 vanishes mid-scan (directory without files).
        std::fs::remove_file(root.0.join("20/stat")).unwrap();
        assert_eq!(pids(id.scan(&proc)), Vec::<i32>::new());
    }
}
