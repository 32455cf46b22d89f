//! Reading processes out of `/proc`.
//!
//! Every scan races with processes exiting: a pid listed by `readdir` may be
//! gone (or recycled) by the time its files are read. Each per-process read is
//! therefore allowed to fail, and a process whose files cannot be read is
//! simply left out of the result instead of failing the scan.
//!
//! The parsers take text, and the private `ProcFs` takes its root as a
//! parameter, so the formats are unit-tested against a fake `/proc` in a
//! temporary directory.

use std::path::PathBuf;

/// One process as seen in `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: i32,
    /// Parent process id (0 for processes without one in this namespace).
    pub ppid: i32,
    /// State letter from `stat`: `R`, `S`, `D`, `T`, `Z` (zombie), `X`, …
    pub state: char,
    /// Session id (field 6); 0 when the session leader lives outside this pid
    /// namespace, as for processes started by `docker exec` and the like.
    pub session: i32,
    /// Command name (`comm`), at most 15 bytes, may contain spaces and parentheses.
    pub comm: String,
}

impl ProcInfo {
    /// Whether the process has exited and waits to be reaped by its parent.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// A parsed `stat` line: the public [`ProcInfo`] plus the fields used to tell
/// a process from a later one that reuses its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) info: ProcInfo,
    /// Field 22, `starttime`, in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// Parses the contents of `/proc/<pid>/stat`.
///
/// `comm` may contain spaces and `)` characters, so it runs from the first
/// `(` to the *last* `)`; the remaining fields are split on whitespace.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_owned();
    // Fields after comm, starting with field 3 (state).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let mut state_chars = rest.first()?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    let ppid = rest.get(1)?.parse().ok()?;
    let session = rest.get(6 - 3)?.parse().ok()?;
    let start_time = rest.get(22 - 3)?.parse().ok()?;
    Some(Stat {
        info: ProcInfo {
            pid,
            ppid,
            state,
            session,
            comm,
        },
        start_time,
    })
}

/// Whether a NUL-separated environment block holds exactly `entry` (`NAME=value`).
pub(crate) fn environ_contains(environ: &[u8], entry: &[u8]) -> bool {
    environ.split(|&b| b == 0).any(|e| e == entry)
}

/// Finds `key:` in a `/proc/<pid>/status` text and returns its trimmed value.
pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// A procfs mount: `/proc` in real use, a fake directory in unit tests.
#[derive(Debug, Clone)]
pub(crate) struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    /// The system's `/proc`.
    pub(crate) fn system() -> ProcFs {
        ProcFs::at("/proc")
    }

    /// A procfs-shaped tree rooted at `root`.
    pub(crate) fn at(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    fn file(&self, pid: i32, name: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(name)
    }

    /// Pids listed right now; some may be gone by the time they are read.
    pub(crate) fn pids(&self) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// The parsed `stat` of `pid`, or `None` if it vanished or is unreadable.
    pub(crate) fn stat(&self, pid: i32) -> Option<Stat> {
        let text = std::fs::read_to_string(self.file(pid, "stat")).ok()?;
        parse_stat(&text)
    }

    /// The raw environment block of `pid`. Empty for zombies, whose memory
    /// (and with it the environment) is already gone.
    pub(crate) fn environ(&self, pid: i32) -> Option<Vec<u8>> {
        std::fs::read(self.file(pid, "environ")).ok()
    }

    /// Every process whose `stat` could be read.
    pub(crate) fn all(&self) -> Vec<Stat> {
        self.pids()
            .into_iter()
            .filter_map(|pid| self.stat(pid))
            .collect()
    }

    /// Processes whose parent is `ppid`.
    pub(crate) fn children_of(&self, ppid: i32) -> Vec<ProcInfo> {
        let mut children: Vec<ProcInfo> = self
            .all()
            .into_iter()
            .map(|s| s.info)
            .filter(|p| p.ppid == ppid)
            .collect();
        children.sort_by_key(|p| p.pid);
        children
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Open descriptors listed under `<root>/self/fd`.
    ///
    /// Listing the directory opens one more descriptor, which shows up in the
    /// listing; it is closed again by the time the links are re-checked, so
    /// only descriptors whose link still resolves are returned. (A descriptor
    /// opened by another thread under the same number in between would be
    /// counted; tests compare snapshots, so this is harmless.)
    pub(crate) fn self_fds(&self) -> Vec<i32> {
        let fd_dir = self.path("self/fd");
        let listed: Vec<i32> = match std::fs::read_dir(&fd_dir) {
            Ok(dir) => dir
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut open: Vec<i32> = listed
            .into_iter()
            .filter(|fd| std::fs::read_link(fd_dir.join(fd.to_string())).is_ok())
            .collect();
        open.sort_unstable();
        open
    }

    /// `Threads:` of `<root>/self/status`.
    pub(crate) fn self_threads(&self) -> Option<usize> {
        let status = std::fs::read_to_string(self.path("self/status")).ok()?;
        status_field(&status, "Threads")?.parse().ok()
    }
}

/// The process `pid` as `/proc` shows it now, or `None` if it is gone.
pub fn process(pid: i32) -> Option<ProcInfo> {
    ProcFs::system().stat(pid).map(|stat| stat.info)
}

/// SIGKILLs the muontrap keeper of the running command `command` (its parent, `mt-keeper`),
/// through a pidfd, after checking that the command's parent is still that keeper once it is
/// pinned (so a recycled pid is never hit). Returns the keeper's pid.
///
/// # Panics
/// If the command is gone or its parent is not a keeper.
pub fn sigkill_keeper_of(command: i32) -> i32 {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let keeper = process(command).expect("the command is alive").ppid;
    let pidfd = pidfd_open(Pid::from_raw(keeper).expect("a pid"), PidfdFlags::empty())
        .expect("pin the keeper");
    assert_eq!(
        process(keeper).map(|p| p.comm),
        Some("mt-keeper".to_owned()),
        "the command's parent is its keeper"
    );
    assert_eq!(
        process(command).map(|p| p.ppid),
        Some(keeper),
        "still the command's parent after pinning"
    );
    pidfd_send_signal(&pidfd, Signal::KILL).expect("SIGKILL the keeper");
    keeper
}

/// Processes whose parent is `pid` (zombies included), sorted by pid.
pub fn children_of(pid: i32) -> Vec<ProcInfo> {
    ProcFs::system().children_of(pid)
}

/// Exited children of `pid` that it has not reaped yet, sorted by pid.
pub fn zombies_of(pid: i32) -> Vec<ProcInfo> {
    let mut zombies = children_of(pid);
    zombies.retain(ProcInfo::is_zombie);
    zombies
}

/// Open file descriptors of the current process, sorted.
///
/// Used to prove that an API leaks no descriptors: take a snapshot before
/// and after. Other test threads open descriptors too, so compare within a
/// test that runs alone or look for specific descriptors.
pub fn open_fds() -> Vec<i32> {
    ProcFs::system().self_fds()
}

/// Number of threads of the current process (`Threads:` in `/proc/self/status`).
///
/// # Panics
/// If `/proc/self/status` cannot be read, which means `/proc` is not mounted.
pub fn thread_count() -> usize {
    ProcFs::system()
        .self_threads()
        .expect("/proc/self/status has a Threads: line (is /proc mounted?)")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway directory, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "muontrap-tests-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes a fake `<pid>/stat` and `<pid>/environ`.
        pub(crate) fn fake_process(&self, pid: i32, stat: &str, environ: &[u8]) {
            let dir = self.0.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stat"), stat).unwrap();
            std::fs::write(dir.join("environ"), environ).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A realistic stat line for `pid` with the given comm, state, ppid, starttime.
    pub(crate) fn stat_line(pid: i32, comm: &str, state: char, ppid: i32, start: u64) -> String {
        format!(
            "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
             {start} 1024000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"
        )
    }

    #[test]
    fn stat_with_spaces_and_parentheses_in_comm() {
        let stat = parse_stat(&stat_line(123, "a b) c", 'S', 1, 4242)).unwrap();
        assert_eq!(
            stat.info,
            ProcInfo {
                pid: 123,
                ppid: 1,
                state: 'S',
                session: 123,
                comm: "a b) c".into()
            }
        );
        assert_eq!(stat.start_time, 4242);
    }

    #[test]
    fn stat_of_zombie_with_odd_comm() {
        let stat = parse_stat(&stat_line(7, ") (Z 9", 'Z', 6, 1)).unwrap();
        assert_eq!(stat.info.comm, ") (Z 9");
        assert_eq!(stat.info.state, 'Z');
        assert_eq!(stat.info.ppid, 6);
        assert!(stat.info.is_zombie());
    }

    #[test]
    fn stat_of_real_process() {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        let stat = parse_stat(&text).unwrap();
        assert_eq!(stat.info.pid, std::process::id() as i32);
        assert!(stat.start_time > 0);
    }

    #[test]
    fn malformed_stat_is_rejected() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x"), None);
        assert_eq!(parse_stat("12 x) S 1"), None);
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(parse_stat("12 (x) SS 1 2 3"), None);
        assert_eq!(parse_stat("nope (x) S 1"), None);
        // Truncated before starttime.
        assert_eq!(parse_stat("12 (x) S 1 2 3 4"), None);
    }

    #[test]
    fn environ_matches_whole_entries_only() {
        let env = b"A=1\0MUONTRAP_TEST_ID=t-1\0B=2\0";
        assert!(environ_contains(env, b"MUONTRAP_TEST_ID=t-1"));
        assert!(environ_contains(env, b"B=2"));
        assert!(!environ_contains(env, b"MUONTRAP_TEST_ID=t-"));
        assert!(!environ_contains(env, b"MUONTRAP_TEST_ID=t-10"));
        assert!(!environ_contains(b"", b"A=1"));
        // Last entry without a trailing NUL still counts.
        assert!(environ_contains(b"X=1\0A=1", b"A=1"));
    }

    #[test]
    fn status_fields_are_found_by_exact_key() {
        let status = "Name:\tx\nThreads:\t4\nSigBlk:\t0000000000000000\n";
        assert_eq!(status_field(status, "Threads"), Some("4"));
        assert_eq!(status_field(status, "Thread"), None);
        assert_eq!(status_field(status, "SigBlk"), Some("0000000000000000"));
    }

    #[test]
    fn fake_proc_children_skip_vanished_and_garbage() {
        let root = TempDir::new("children");
        root.fake_process(10, &stat_line(10, "parent", 'S', 1, 5), b"");
        root.fake_process(11, &stat_line(11, "kid one", 'S', 10, 6), b"");
        root.fake_process(12, &stat_line(12, "dead)", 'Z', 10, 7), b"");
        root.fake_process(13, &stat_line(13, "other", 'S', 1, 8), b"");
        // A pid directory whose stat vanished, and a non-pid entry.
        std::fs::create_dir_all(root.0.join("14")).unwrap();
        std::fs::create_dir_all(root.0.join("self")).unwrap();
        let proc = ProcFs::at(&root.0);
        let kids: Vec<i32> = proc.children_of(10).iter().map(|p| p.pid).collect();
        assert_eq!(kids, [11, 12]);
        assert_eq!(proc.all().len(), 4);
        assert!(proc.stat(14).is_none());
    }

    #[test]
    fn own_fds_and_threads_are_seen() {
        let fds = open_fds();
        assert!(fds.contains(&0) || fds.contains(&1) || fds.contains(&2));
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        assert!(open_fds().contains(&fd));
        drop(file);
        assert!(thread_count() >= 1);
    }
}
