//! The keeper: one process that owns one command tree.
//!
//! The kernel kills nothing when an owner dies (see `docs/design.md`), so every command runs
//! under a keeper: a small single-threaded process that is a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`), so that every orphan of the tree is re-parented to it instead of
//! init. That makes "the keeper has no children left" the exact, race-free definition of "the
//! tree is gone": a `setsid` + double-fork daemon is still the keeper's descendant.
//!
//! [`Keeper`] is the mechanism shared by every face: it launches the command, turns SIGCHLD and
//! the keeper's own stop signals into events on one `signalfd`, reaps everything (no zombie
//! survives), and runs the stop sequence ([`Keeper::stop_tree`]): SIGTERM (+SIGCONT, so stopped
//! members can act on it) to every member, wait up to the grace period for the tree to empty,
//! then SIGKILL passes until nothing is left. Members are found by walking `/proc` and are
//! signalled only through pidfds (see [`crate::sys::proc_tree`]).

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, WaitOptions};

use crate::cgroup::{LiveCgroup, Statistics};
use crate::sys::exec::{self, ExecPlan, SpawnError};
use crate::sys::proc_tree::ProcFs;
use crate::sys::signals::{self, SignalFd};

/// How long the SIGKILL phase may keep sweeping before giving up (processes stuck in
/// uninterruptible sleep cannot be reaped any faster; we never loop forever).
pub const KILL_PHASE_BOUND: Duration = Duration::from_secs(10);

/// Least time between two walks of the tree while waiting for SIGTERM to work.
const REWALK_INTERVAL: Duration = Duration::from_millis(5);

/// Owns one command tree. Create one per keeper process.
#[derive(Debug)]
pub struct Keeper {
    procfs: ProcFs,
    signals: SignalFd,
    me: i32,
    main: Option<Main>,
    status: Option<i32>,
    cgroup: Option<LiveCgroup>,
    cgroup_stats: Option<Statistics>,
}

#[derive(Debug)]
struct Main {
    pid: i32,
    pidfd: OwnedFd,
}

/// Something the keeper's signalfd reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperEvent {
    /// The command's main process was reaped with this raw wait status.
    MainExited(i32),
    /// The keeper itself received this (non-SIGCHLD) signal.
    Signal(i32),
}

impl Keeper {
    /// Makes the calling process a keeper: child subreaper, with SIGCHLD and `stop_signals`
    /// blocked and readable through [`Keeper::signal_fd`]. Call it in a single-threaded process
    /// (signal masks are per thread).
    pub fn new(stop_signals: &[i32]) -> io::Result<Keeper> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        // SIGCHLD must be at its default disposition (an inherited SIG_IGN would auto-reap and
        // hide exit statuses).
        signals::default(&[libc::SIGCHLD])?;
        let mut set = vec![libc::SIGCHLD];
        set.extend_from_slice(stop_signals);
        Ok(Keeper {
            procfs: ProcFs::default(),
            signals: SignalFd::new(&set)?,
            me: rustix::process::getpid().as_raw_nonzero().get(),
            main: None,
            status: None,
            cgroup: None,
            cgroup_stats: None,
        })
    }

    /// Drops every stop signal already pending (SIGCHLD included): for a keeper that is being
    /// reused, signals that arrived while it was idle concern no command.
    pub fn discard_pending_signals(&mut self) {
        let _ = self.signals.drain();
    }

    /// Launches the command. Only one main command per keeper.
    pub fn spawn(&mut self, plan: &ExecPlan) -> Result<i32, SpawnError> {
        assert!(self.main.is_none(), "a keeper runs one command");
        let pid = exec::spawn(plan)?;
        let pidfd = rustix::process::pidfd_open(
            Pid::from_raw(pid).expect("fork returned a positive pid"),
            PidfdFlags::empty(),
        )
        .map_err(|e| SpawnError::Setup(e.into()))?;
        self.main = Some(Main { pid, pidfd });
        Ok(pid)
    }

    /// Hands the command's (already joined) cgroup to the keeper: the SIGKILL phase of
    /// [`Keeper::stop_tree`] starts with `cgroup.kill`, and [`Keeper::release_cgroup`] (or
    /// dropping the keeper) empties and removes it.
    pub fn adopt_cgroup(&mut self, mut cgroup: LiveCgroup) {
        cgroup.close_join_fds();
        self.cgroup = Some(cgroup);
    }

    /// Kills whatever is left in the command's cgroup, reaps, waits until the cgroup is empty,
    /// records its final statistics ([`Keeper::cgroup_statistics`]) and removes it. Call it
    /// once the tree has been stopped, before reporting the end to the owner. Returns whether
    /// there was a cgroup.
    pub fn release_cgroup(&mut self) -> bool {
        let had = self.cgroup.is_some();
        if let Some(mut cg) = self.cgroup.take() {
            if cg.populated() {
                cg.kill();
                let bound = Instant::now() + KILL_PHASE_BOUND;
                while cg.populated() && self.reap() && Instant::now() < bound {
                    self.wait_signal(Duration::from_millis(5));
                }
            }
            self.cgroup_stats = cg.release();
        }
        had
    }

    /// The cgroup's statistics as they were when it was removed.
    pub fn cgroup_statistics(&self) -> Option<&Statistics> {
        self.cgroup_stats.as_ref()
    }

    /// The pid of the command's main process, if one was spawned.
    pub fn main_pid(&self) -> Option<i32> {
        self.main.as_ref().map(|m| m.pid)
    }

    /// The raw wait status of the main process, once it has been reaped.
    pub fn main_status(&self) -> Option<i32> {
        self.status
    }

    /// The descriptor to poll for [`Keeper::events`].
    pub fn signal_fd(&self) -> BorrowedFd<'_> {
        self.signals.as_fd()
    }

    /// Reads pending signals, reaping on SIGCHLD. Returns what happened.
    pub fn events(&mut self) -> io::Result<Vec<KeeperEvent>> {
        let mut out = Vec::new();
        for sig in self.signals.drain()? {
            if sig != libc::SIGCHLD {
                out.push(KeeperEvent::Signal(sig));
            }
        }
        // Reap even if no SIGCHLD was read: they coalesce, and reaping is cheap.
        let before = self.status;
        self.reap();
        if before.is_none() {
            if let Some(st) = self.status {
                out.push(KeeperEvent::MainExited(st));
            }
        }
        Ok(out)
    }

    /// Sends `sig` to the main process (through its pidfd) if it has not been reaped.
    pub fn signal_main(&self, sig: i32) -> io::Result<()> {
        match (&self.main, self.status) {
            (Some(m), None) => signals::pidfd_send(m.pidfd.as_fd(), sig),
            _ => Ok(()),
        }
    }

    /// Reaps every exited child (including re-parented orphans). Returns whether any child is
    /// still alive.
    pub fn reap(&mut self) -> bool {
        loop {
            // `wait` is waitpid(-1): any child, whatever its process group (setsid orphans!).
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    if self
                        .main
                        .as_ref()
                        .is_some_and(|m| m.pid == pid.as_raw_nonzero().get())
                    {
                        self.status = Some(status.as_raw());
                    }
                }
                Ok(None) => return true,
                Err(rustix::io::Errno::INTR) => continue,
                // ECHILD: nothing left.
                Err(_) => return false,
            }
        }
    }

    /// Whether any process of the tree is still alive (reaps what has exited).
    pub fn tree_alive(&mut self) -> bool {
        self.reap()
    }

    /// The stop sequence for the whole tree. With a non-zero `grace`: SIGTERM and SIGCONT to
    /// every member, new members included, until the tree is empty or `grace` has passed; a
    /// stop signal received meanwhile cuts the grace short. Then SIGKILL sweeps until nothing
    /// is left. Returns the number of processes that could not be reaped (0 unless something
    /// is stuck in the kernel for longer than the sweep bound).
    pub fn stop_tree(&mut self, grace: Duration) -> usize {
        if !self.reap() {
            return 0;
        }
        if !grace.is_zero() {
            let deadline = Instant::now() + grace;
            // Members already sent SIGTERM: not pinned or signalled again, but still walked
            // below, since a process that ignores SIGTERM may keep forking.
            let mut termed: HashSet<i32> = HashSet::new();
            // Every SIGCHLD wakes us to check for an empty tree (one cheap waitpid); the walk
            // for members forked meanwhile is rate-limited, or a deep chain dying one level at
            // a time would cost a full walk per level.
            let mut next_walk = Instant::now();
            loop {
                if Instant::now() >= next_walk {
                    for m in self.procfs.pin_new(self.me, &termed, true) {
                        let _ = signals::pidfd_send(m.pidfd.as_fd(), libc::SIGTERM);
                        let _ = signals::pidfd_send(m.pidfd.as_fd(), libc::SIGCONT);
                        termed.insert(m.pid);
                    }
                    next_walk = Instant::now() + REWALK_INTERVAL;
                }
                if !self.reap() {
                    return 0;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if self.wait_signal(deadline - now) {
                    break;
                }
            }
        }
        // With a cgroup, one write kills every member at once (and members that are not our
        // descendants, if someone moved any in). `cgroup.kill` is atomic: the kernel also
        // kills what forks meanwhile, and every member of our tree was born inside, so then
        // nothing is left to find in /proc: we only reap. Otherwise the sweep below does it.
        let atomic = self.cgroup.as_ref().is_some_and(|cg| cg.kill());
        // Should a member have been moved out of the cgroup (only root can), the sweep still
        // finds it, a little later.
        let sweep_from = Instant::now()
            + if atomic {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
        let bound = Instant::now() + KILL_PHASE_BOUND;
        // A SIGKILLed process cannot fork any more (the kernel aborts a fork with a fatal
        // signal pending) and its live children are re-parented to us, so each sweep pins
        // only processes not killed yet and does not walk below killed ones.
        let mut killed: HashSet<i32> = HashSet::new();
        loop {
            if Instant::now() >= sweep_from {
                kill_pass(&self.procfs, self.me, &mut killed);
            }
            if !self.reap() {
                return 0;
            }
            let now = Instant::now();
            if now >= bound {
                let left = self.procfs.descendants(self.me).len();
                tracing::warn!(left, "processes survived the SIGKILL sweep");
                return left.max(1);
            }
            // SIGCHLD wakes us when the last child goes; the short cap re-sweeps members forked
            // by processes that had not been killed yet.
            self.wait_signal(Duration::from_millis(5).min(bound - now));
        }
    }

    /// Waits up to `timeout` for the signalfd; returns true if a stop signal (not SIGCHLD)
    /// arrived.
    fn wait_signal(&mut self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(&self.signals, PollFlags::IN)];
        let _ = poll(&mut fds, Some(timeout));
        match self.signals.drain() {
            Ok(sigs) => sigs.iter().any(|&s| s != libc::SIGCHLD),
            Err(_) => false,
        }
    }
}

/// One SIGKILL pass over the descendants of `root` (the calling process, a subreaper): every
/// member not in `spared` is pinned, SIGKILLed through its pidfd and added to `spared`. The
/// walk does not go below spared processes: a killed one cannot fork any more, and its live
/// children are re-parented to `root`, where the next pass finds them. Returns how many were
/// killed.
pub fn kill_pass(procfs: &ProcFs, root: i32, spared: &mut HashSet<i32>) -> usize {
    let mut killed = Vec::new();
    // Each member is killed as soon as its children have been read, so the kernel tears the
    // first members down while the walk reads the rest (a deep chain would otherwise wait
    // for the whole walk).
    procfs.walk(
        root,
        |p| !spared.contains(&p),
        |pid, parent| {
            if spared.contains(&pid) {
                return;
            }
            if let Some(m) = procfs.pin(pid, parent, root) {
                let _ = signals::pidfd_send(m.pidfd.as_fd(), libc::SIGKILL);
                killed.push(m.pid);
            }
        },
    );
    let n = killed.len();
    spared.extend(killed);
    n
}

/// `poll` with a `Duration` timeout (None = forever), EINTR retried as a zero-event return.
pub fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos() as _,
    });
    match rustix::event::poll(fds, ts.as_ref()) {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::INTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}
