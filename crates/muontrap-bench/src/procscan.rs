//! Reading `/proc`: processes carrying a marker, parents, memory.
//!
//! Everything a benchmark spawns carries `MUONTRAP_TEST_ID=<marker>` in its environment, so
//! leftovers are found by that marker and nothing else (never by name).

use std::fs;
use std::time::{Duration, Instant};

/// The environment variable every spawned tree carries.
pub const MARKER_VAR: &str = "MUONTRAP_TEST_ID";

/// Pids of live processes whose environment holds `MUONTRAP_TEST_ID=<marker>` exactly.
/// (Zombies have no readable environment, so they are not counted: they are gone but for
/// their exit status.)
pub fn with_marker(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let mut found = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

/// Waits (up to `within`) until no live process carries `marker`; returns how many remain.
pub fn settle(marker: &str, within: Duration) -> usize {
    let end = Instant::now() + within;
    loop {
        let left = with_marker(marker).len();
        if left == 0 || Instant::now() >= end {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stat_fields(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain anything, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

fn is_zombie(pid: i32) -> bool {
    matches!(stat_fields(pid), Some(('Z', _)) | None)
}

/// The parent pid of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid).map(|(_, p)| p)
}

/// Children of `parent` (by scanning `/proc/*/stat`).
pub fn children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            && ppid(pid) == Some(parent)
        {
            out.push(pid);
        }
    }
    out
}

/// `argv[0]` of `pid`.
pub fn argv0(pid: i32) -> Option<String> {
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = cmd.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

/// `comm` of `pid`.
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`, `RssAnon`).
pub fn status_kb(pid: i32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// SIGKILLs, pid by pid, the processes that still carry `marker`, then reaps those that were
/// re-parented to this process (it is a child subreaper). Returns how many were killed.
pub fn kill_marked(marker: &str) -> usize {
    let pids = with_marker(marker);
    for &pid in &pids {
        // SAFETY: plain syscall; the pid was just seen carrying our marker.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for &pid in &pids {
        reap(pid, Duration::from_secs(2));
    }
    pids.len()
}

/// Reaps `pid` if it is (or becomes, within `within`) a zombie child of this process.
pub fn reap(pid: i32, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on a specific pid.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 || Instant::now() >= end {
            // Reaped, or not our child (ECHILD), or out of time.
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
