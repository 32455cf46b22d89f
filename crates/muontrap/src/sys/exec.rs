//! Fork and exec of the contained command, with every allocation done before the fork.
//!
//! Why this is hand-written instead of `std::process::Command`: the keeper needs the child to
//! (a) be born in (or join) a cgroup and drop credentials in a precise order (setgid → setgroups → setuid),
//! (b) get `PR_SET_PDEATHSIG` tied to the keeper's only thread and re-check the parent pid
//! afterwards (the parent may already be gone), (c) reset *every* signal disposition and the
//! mask that the keeper changed for its own `signalfd`, and (d) report exactly which stage
//! failed. Everything the child touches is prepared in [`ExecPlan`] before `fork`, so the child
//! runs only async-signal-safe system calls: no allocation, no locks, no logging. The keeper
//! that calls [`spawn`] is single-threaded, but we keep the discipline anyway so that the code
//! stays correct if it is ever called from a threaded process.

use std::ffi::{CStr, CString, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// What the child's fd 0, 1 or 2 becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdAction {
    /// Keep whatever the keeper has on that descriptor.
    Inherit,
    /// `dup2` this descriptor (owned by the caller, kept open until [`spawn`] returns) onto it.
    Dup(RawFd),
}

/// What to do with the supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsAction {
    /// Leave the inherited supplementary groups alone.
    Keep,
    /// `setgroups(list)`; an empty list drops all supplementary groups.
    Set(Vec<libc::gid_t>),
}

/// The stage of child setup that failed, reported back through the exec-error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExecStage {
    /// Resetting signal dispositions or the mask.
    Signals = 1,
    /// Redirecting stdin/stdout/stderr.
    Stdio = 2,
    /// Changing directory.
    Chdir = 3,
    /// `setgid`.
    Setgid = 4,
    /// `setgroups`.
    Setgroups = 5,
    /// `setuid`.
    Setuid = 6,
    /// `prctl(PR_SET_PDEATHSIG)` or the parent died before the child was ready.
    ParentDeath = 7,
    /// Joining the cgroup (writing `0` to `cgroup.procs` or v1 `tasks`).
    Cgroup = 8,
    /// `execve` itself.
    Exec = 9,
}

impl ExecStage {
    /// The stage with this number (as reported over the exec-error pipe or the control
    /// socket); unknown numbers are `Exec`.
    pub fn from_u32(v: u32) -> ExecStage {
        match v {
            1 => ExecStage::Signals,
            2 => ExecStage::Stdio,
            3 => ExecStage::Chdir,
            4 => ExecStage::Setgid,
            5 => ExecStage::Setgroups,
            6 => ExecStage::Setuid,
            7 => ExecStage::ParentDeath,
            8 => ExecStage::Cgroup,
            _ => ExecStage::Exec,
        }
    }

    /// A short human name for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ExecStage::Signals => "resetting signals",
            ExecStage::Stdio => "redirecting stdio",
            ExecStage::Chdir => "changing directory",
            ExecStage::Setgid => "setgid",
            ExecStage::Setgroups => "setgroups",
            ExecStage::Setuid => "setuid",
            ExecStage::ParentDeath => "setting the parent-death signal",
            ExecStage::Cgroup => "joining the cgroup",
            ExecStage::Exec => "exec",
        }
    }
}

/// A child that failed before or during `execve`.
#[derive(Debug)]
pub struct ExecFailure {
    /// Which step failed.
    pub stage: ExecStage,
    /// The errno it failed with.
    pub error: io::Error,
}

/// Everything the child needs, as raw C data, prepared before `fork`.
pub struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    sh_argv_ptrs: Vec<*const c_char>,
    cwd: Option<CString>,
    stdio: [FdAction; 3],
    gid: Option<libc::gid_t>,
    groups: GroupsAction,
    uid: Option<libc::uid_t>,
    ignore_sigpipe: bool,
    reset_signals: &'static [c_int],
    umask: Option<libc::mode_t>,
    parent_death_kill: bool,
    cgroup_procs: Vec<RawFd>,
    cgroup_v2_dir: Option<RawFd>,
}

const SH: &CStr = c"/bin/sh";

impl ExecPlan {
    /// Prepares a plan. `argv[0]` is what the program sees as its name; `path` is what is
    /// executed. `envp` entries are `KEY=VALUE`.
    pub fn new(path: CString, argv: Vec<CString>, envp: Vec<CString>) -> ExecPlan {
        let mut plan = ExecPlan {
            path,
            argv,
            envp,
            argv_ptrs: Vec::new(),
            envp_ptrs: Vec::new(),
            sh_argv_ptrs: Vec::new(),
            cwd: None,
            stdio: [FdAction::Inherit; 3],
            gid: None,
            groups: GroupsAction::Keep,
            uid: None,
            ignore_sigpipe: false,
            reset_signals: non_default_signals(),
            umask: None,
            parent_death_kill: true,
            cgroup_procs: Vec::new(),
            cgroup_v2_dir: None,
        };
        plan.argv_ptrs = plan.argv.iter().map(|a| a.as_ptr()).collect();
        plan.argv_ptrs.push(std::ptr::null());
        plan.envp_ptrs = plan.envp.iter().map(|a| a.as_ptr()).collect();
        plan.envp_ptrs.push(std::ptr::null());
        // execvp's ENOEXEC fallback: run the file with /bin/sh, keeping the other arguments.
        plan.sh_argv_ptrs.push(SH.as_ptr());
        plan.sh_argv_ptrs.push(plan.path.as_ptr());
        plan.sh_argv_ptrs
            .extend(plan.argv.iter().skip(1).map(|a| a.as_ptr()));
        plan.sh_argv_ptrs.push(std::ptr::null());
        plan
    }

    /// Directory to change into before exec.
    pub fn cwd(&mut self, cwd: Option<CString>) -> &mut Self {
        self.cwd = cwd;
        self
    }

    /// Redirection of fd `n` (0, 1 or 2).
    pub fn stdio(&mut self, n: usize, action: FdAction) -> &mut Self {
        self.stdio[n] = action;
        self
    }

    /// Credentials to switch to, applied as setgid → setgroups → setuid.
    pub fn credentials(
        &mut self,
        uid: Option<u32>,
        gid: Option<u32>,
        groups: GroupsAction,
    ) -> &mut Self {
        self.uid = uid;
        self.gid = gid;
        self.groups = groups;
        self
    }

    /// Whether the child starts with SIGPIPE ignored (what programs started by the BEAM see)
    /// instead of the default disposition.
    pub fn ignore_sigpipe(&mut self, ignore: bool) -> &mut Self {
        self.ignore_sigpipe = ignore;
        self
    }

    /// The file mode creation mask the child sets before exec (None: inherit).
    pub fn umask(&mut self, mask: Option<u32>) -> &mut Self {
        self.umask = mask.map(|m| m as libc::mode_t);
        self
    }

    /// Whether the child gets `PR_SET_PDEATHSIG(SIGKILL)` so that it dies if the keeper is
    /// killed outright. On by default.
    pub fn parent_death_kill(&mut self, on: bool) -> &mut Self {
        self.parent_death_kill = on;
        self
    }

    /// The cgroups to join: descriptors of the files the child writes `0` to (the v2
    /// `cgroup.procs` first, then one v1 `tasks` per hierarchy; see
    /// [`crate::cgroup::plan::Dirs::join_files`]), and the v2 directory itself if `procs[0]`
    /// is its `cgroup.procs`. With the
    /// directory, the child is born inside it (`clone3` with `CLONE_INTO_CGROUP`) and writes
    /// only the others; where the kernel cannot do that, it writes all of them. Any failed
    /// write fails the spawn at [`ExecStage::Cgroup`].
    pub fn join_cgroups(&mut self, procs: &[RawFd], v2_dir: Option<RawFd>) -> &mut Self {
        self.cgroup_procs = procs.to_vec();
        self.cgroup_v2_dir = v2_dir.filter(|_| !procs.is_empty());
        self
    }
}

/// The signals whose disposition in this process is not the default (ignored, or with a
/// handler), computed once per process: the child resets just these instead of making a
/// `signal` call for every signal number while the keeper waits for it (vfork). Dispositions
/// of a keeper do not change after it starts, except SIGCHLD going back to default, which
/// only makes an entry redundant.
fn non_default_signals() -> &'static [c_int] {
    static LIST: std::sync::OnceLock<Vec<c_int>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        (1..=libc::SIGRTMAX())
            .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
            .filter(|&sig| {
                let mut old = KernelSigaction::default();
                // SAFETY: rt_sigaction with a null new action only writes the current one into
                // `old`, which is large enough for the kernel's struct (sigsetsize 8).
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        std::ptr::null::<KernelSigaction>(),
                        &mut old as *mut KernelSigaction,
                        8usize,
                    )
                };
                r == 0 && old.handler != 0
            })
            .collect()
    })
}

/// The kernel's `struct sigaction` (x86-64 and arm64 layout: both have `sa_restorer`).
/// glibc's `sigaction` refuses to touch its internal signals 32 and 33, which a process can
/// still inherit as ignored (glibc's `posix_spawn` leaves them so); the raw system call sees
/// and resets them too.
#[derive(Default)]
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Sets `sig` to its default disposition with the raw system call. Async-signal-safe.
///
/// # Safety
/// Only changes a signal disposition; callable between fork and exec.
unsafe fn reset_to_default(sig: c_int) {
    let dfl = KernelSigaction::default();
    // SAFETY: a zeroed kernel sigaction is SIG_DFL with no flags and an empty mask.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &dfl as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        );
    }
}

/// Forks and execs the plan. Returns the child's pid once `execve` succeeded, or the stage and
/// errno at which the child gave up (the failed child is reaped before returning).
pub fn spawn(plan: &ExecPlan) -> Result<i32, SpawnError> {
    let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SpawnError::Setup(e.into()))?;
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    let into_cgroup = plan
        .cgroup_v2_dir
        .filter(|_| CLONE_INTO_CGROUP_WORKS.load(Ordering::Relaxed))
        .and_then(|dir| clone_into_cgroup(plan, dir, err_write.as_raw_fd(), parent).ok());
    let pid = match into_cgroup {
        Some(pid) => pid,
        None => clone_vfork(plan, err_write.as_raw_fd(), parent).map_err(SpawnError::Setup)?,
    };
    drop(err_write);
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        match rustix::io::read(&err_read, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(SpawnError::Setup(e.into())),
        }
    }
    if got == 0 {
        return Ok(pid);
    }
    // The child failed before exec and has exited (or is about to): reap it.
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    );
    let stage = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    Err(SpawnError::Child(ExecFailure {
        stage: ExecStage::from_u32(stage),
        error: io::Error::from_raw_os_error(errno),
    }))
}

/// Whether `clone3(CLONE_INTO_CGROUP)` may work here: cleared for good by the first kernel that
/// does not know `clone3` (before 5.3) or the flag (before 5.7).
static CLONE_INTO_CGROUP_WORKS: AtomicBool = AtomicBool::new(true);

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Clones the child straight into the v2 cgroup `dir`, so that it is accounted and contained
/// from its first instruction; it then joins only the remaining (v1) hierarchies. Fork
/// semantics (no shared memory: a raw `clone3` child cannot run on a stack of its own without
/// assembly), suspended until the child execs like vfork. Any error means "use the vfork path",
/// which writes every join file and reports a failed join precisely.
fn clone_into_cgroup(plan: &ExecPlan, dir: RawFd, err_fd: RawFd, parent: i32) -> io::Result<i32> {
    let args = CloneArgs {
        flags: libc::CLONE_VFORK as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 reads `args` (live for the call, its size passed along). Without CLONE_VM
    // the child gets a copy of our memory and continues here on a copy of this stack, like
    // after fork; it only runs `child_after_fork`, which never returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        // SAFETY: we are the new child; the v2 join is done (procs[0] is skipped).
        0 => unsafe { child_after_fork(plan, &plan.cgroup_procs[1..], err_fd, parent) },
        -1 => {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
            ) {
                CLONE_INTO_CGROUP_WORKS.store(false, Ordering::Relaxed);
            }
            Err(e)
        }
        pid => Ok(pid as i32),
    }
}

/// Starts the child vfork-style; it joins every cgroup of the plan by writing its pid.
fn clone_vfork(plan: &ExecPlan, err_fd: RawFd, parent: i32) -> io::Result<i32> {
    // vfork-style: the child shares our memory and runs on its own stack until it execs, and
    // we are suspended until then (CLONE_VFORK). No page tables are copied, which is what
    // makes spawning from the keeper cheap; it is safe because the child only makes
    // async-signal-safe calls on data prepared before the clone (glibc's posix_spawn works
    // the same way). The stack is heap memory that outlives the child's use of it: we do not
    // return (or free it) before the child has exec'd or exited.
    let mut stack = vec![0u8; CHILD_STACK_SIZE];
    let args = ChildArgs {
        plan,
        err_fd,
        parent,
    };
    // The stack grows down; the ABI wants 16-byte alignment.
    let top = ((stack.as_mut_ptr() as usize + stack.len()) & !15) as *mut libc::c_void;
    // SAFETY: `child_entry` receives a pointer to `args`, alive until clone returns (the
    // parent is suspended until the child execs or exits); `top` is the aligned end of a live,
    // writable buffer; SIGCHLD as exit signal makes it an ordinary waitable child.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&args as *const ChildArgs<'_>).cast_mut().cast(),
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// Stack for the vfork-style child (it only runs the setup below before exec).
const CHILD_STACK_SIZE: usize = 64 * 1024;

struct ChildArgs<'a> {
    plan: &'a ExecPlan,
    err_fd: RawFd,
    parent: i32,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` points to the `ChildArgs` that `spawn` keeps alive while we run.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    // SAFETY: we are the new child; `child_after_fork` never returns.
    unsafe { child_after_fork(args.plan, &args.plan.cgroup_procs, args.err_fd, args.parent) }
}

/// Why [`spawn`] failed.
#[derive(Debug)]
pub enum SpawnError {
    /// The keeper itself could not fork or make its pipe.
    Setup(io::Error),
    /// The child gave up before exec.
    Child(ExecFailure),
}

/// The child side. Only async-signal-safe calls; never returns. It runs in our address
/// space (vfork-style), so it must not allocate, lock, unwind or return.
///
/// # Safety
/// Must be called only in a freshly cloned child.
unsafe fn child_after_fork(plan: &ExecPlan, joins: &[RawFd], err_fd: RawFd, parent: i32) -> ! {
    let fail = |stage: ExecStage| -> ! {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg outlives the call.
        unsafe {
            libc::write(err_fd, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    };
    // SAFETY (whole block): each call is an async-signal-safe system call wrapper operating on
    // plain integers or on pointers into `plan`, which was fully built before the fork and is
    // not modified. Nothing here allocates or takes a lock.
    unsafe {
        // 1. Signals: every disposition that is not the default back to default (the keeper
        //    ignores some; see `non_default_signals`), SIGPIPE as asked, then an empty mask
        //    (the keeper blocks the signals it reads through signalfd).
        for &sig in plan.reset_signals {
            reset_to_default(sig);
        }
        libc::signal(
            libc::SIGPIPE,
            if plan.ignore_sigpipe {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            },
        );
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(ExecStage::Signals);
        }
        // 2. Die with the keeper; if it is already gone, do not run at all.
        if plan.parent_death_kill {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                fail(ExecStage::ParentDeath);
            }
            if libc::getppid() != parent {
                *libc::__errno_location() = libc::ESRCH;
                fail(ExecStage::ParentDeath);
            }
        }
        // 3. Join the cgroup(s) before anything else can fork: `0` means the writer, which is
        //    this single thread (see `Dirs::join_files`). The write's result is the kernel's
        //    verdict (e.g. an empty v1 cpuset refuses tasks), so it is checked.
        for &fd in joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(ExecStage::Cgroup);
            }
        }
        // 4. stdio. Sources are >= 3 (the caller guarantees it), so dup2 cannot clobber a
        //    source that a later dup2 still needs.
        for (target, action) in plan.stdio.iter().enumerate() {
            if let FdAction::Dup(src) = *action {
                if libc::dup2(src, target as c_int) < 0 {
                    fail(ExecStage::Stdio);
                }
            }
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if let Some(cwd) = &plan.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                fail(ExecStage::Chdir);
            }
        }
        // 5. Credentials: group first, while we still may.
        if let Some(gid) = plan.gid {
            if libc::setgid(gid) != 0 {
                fail(ExecStage::Setgid);
            }
        }
        if let GroupsAction::Set(list) = &plan.groups {
            if libc::setgroups(list.len(), list.as_ptr()) != 0 {
                fail(ExecStage::Setgroups);
            }
        }
        if let Some(uid) = plan.uid {
            if libc::setuid(uid) != 0 {
                fail(ExecStage::Setuid);
            }
        }
        // 6. Exec, with execvp's fallback for files without a `#!` line.
        libc::execve(
            plan.path.as_ptr(),
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        );
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::execve(
                SH.as_ptr(),
                plan.sh_argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
        }
        fail(ExecStage::Exec)
    }
}

/// Moves `fd` to a number >= 3 if it is one of the standard descriptors, so that a `dup2`
/// onto 0/1/2 in the child can never overwrite a source still needed.
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = rustix::io::fcntl_dupfd_cloexec(&fd, 3)?;
    Ok(moved)
}

/// Opens `/dev/null` read-write, close-on-exec, at a descriptor >= 3.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        c"/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    above_stdio(fd)
}

/// Duplicates standard descriptor `n` (0, 1 or 2) of this process to a close-on-exec
/// descriptor >= 3, or `None` if it is not open.
pub fn dup_standard(n: RawFd) -> Option<OwnedFd> {
    assert!((0..=2).contains(&n));
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor number; a closed one fails with EBADF.
    let fd = unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: on success `fd` is a new descriptor that only we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}
