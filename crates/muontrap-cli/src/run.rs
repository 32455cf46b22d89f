//! `muontrap run [OPTIONS] -- PROGRAM [ARGS]`: the human face.
//!
//! This process is the keeper: a child subreaper that launches the command with inherited
//! stdio and stops the whole tree when the command ends (leftover descendants), when the
//! timeout fires, when muontrap gets SIGINT/SIGTERM/SIGHUP/SIGQUIT, or when muontrap's
//! **parent** dies. The parent is watched through a pidfd; the parent pid is re-read after
//! opening it, so a parent that died before we looked is noticed too.
//!
//! With cgroup flags, the command runs in a cgroup of its own (`--cgroup-path`, or a unique
//! child of `--cgroup-base`; limit flags alone mean `--cgroup-base .`, a child of muontrap's
//! own cgroup). This process creates it before the command starts, and empties and removes it
//! at the end; `--stats` then reports the cgroup's peak memory, CPU time and OOM kills.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Instant;

use muontrap::cgroup::{CgroupError, CpuMax, Limits, PidsLimit};
use muontrap::engine::keeper::Keeper;
use muontrap::engine::spec::LaunchSpec;
use muontrap::engine::watch::{Ending, Lifeline, LifelineEvent, watch};
use muontrap::sys::exec::{self, ExecPlan, ExecStage, SpawnError};
use muontrap::{Command, Group, User};

use crate::exit_code::ExitCode;
use crate::port_args::{self, CgroupLimits, SystemAccounts};
use crate::run_args::{RunArgs, RunCommand, parse_run_args, usage};

/// Runs `muontrap run` with the arguments after `run`.
pub fn main(args: &[OsString]) -> ExitCode {
    let parsed = match parse_run_args(args, &SystemAccounts) {
        Ok(RunCommand::Help) => {
            print!("{}", usage());
            return ExitCode::Ok;
        }
        Ok(RunCommand::Run(a)) => a,
        Err(e) => {
            eprintln!("muontrap run: {e}");
            if e.is_usage_error() {
                eprintln!("Try 'muontrap run --help' for more information.");
            }
            return ExitCode::RunFailure;
        }
    };
    match run(&parsed) {
        Ok(code) => code,
        Err(RunError::Library(e)) => {
            eprintln!("muontrap run: {}", error_chain(&e));
            match e {
                muontrap::Error::ProgramNotFound { .. } => ExitCode::NotFound,
                muontrap::Error::NotExecutable { .. } => ExitCode::NotExecutable,
                _ => ExitCode::RunFailure,
            }
        }
        Err(RunError::Other(msg)) => {
            eprintln!("muontrap run: {msg}");
            ExitCode::RunFailure
        }
        Err(RunError::Start(stage, e)) => {
            eprintln!(
                "muontrap run: cannot start '{}' while {}: {e}",
                parsed.program.to_string_lossy(),
                stage.describe()
            );
            match (stage, e.raw_os_error()) {
                (ExecStage::Exec, Some(libc::ENOENT)) => ExitCode::NotFound,
                (ExecStage::Exec, _) => ExitCode::NotExecutable,
                _ => ExitCode::RunFailure,
            }
        }
    }
}

enum RunError {
    Library(muontrap::Error),
    Start(ExecStage, io::Error),
    Other(String),
}

/// `error: cause: cause`, since library errors keep their causes in `source()`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Applies the cgroup flags shared by `run` and port mode to `cmd`. Limits without a
/// placement mean a new cgroup under muontrap's own (`--cgroup-base .`).
pub(crate) fn apply_cgroup_flags(cmd: &mut Command, flags: &CgroupLimits) -> Result<(), String> {
    let mut limits = Limits::new();
    if let Some(m) = flags.memory_max {
        limits.memory_max(m);
    }
    if let Some(m) = flags.memory_high {
        limits.memory_high(m);
    }
    let cpu = |m: port_args::CpuMax| CpuMax {
        quota_us: m.quota_us,
        period_us: m.period_us.unwrap_or(CpuMax::DEFAULT_PERIOD_US),
    };
    if let Some(m) = flags.cpu_max {
        limits.cpu_max(cpu(m));
    }
    if let Some(c) = flags.cpus {
        limits.cpu_max(cpu(c.to_cpu_max(CpuMax::DEFAULT_PERIOD_US)));
    }
    if let Some(w) = flags.cpu_weight {
        limits.cpu_weight(w);
    }
    if let Some(p) = flags.pids_max {
        limits.pids_max(match p {
            port_args::PidsLimit::Count(n) => PidsLimit::Count(n),
            port_args::PidsLimit::Max => PidsLimit::Max,
        });
    }
    for s in &flags.sets {
        limits.set(&s.key, &s.value);
    }
    match (&flags.path, &flags.base) {
        (Some(_), Some(_)) => {
            return Err("give --cgroup-path or --cgroup-base, not both".into());
        }
        (Some(p), None) => {
            cmd.cgroup_path(p);
        }
        (None, Some(b)) => {
            cmd.cgroup_base(b);
        }
        (None, None) if !limits.is_empty() => {
            cmd.cgroup_base(".");
        }
        (None, None) => {}
    }
    cmd.cgroup_limits(limits);
    Ok(())
}

/// Why [`spawn_contained`] failed.
pub(crate) enum Launch {
    /// Creating or setting up the cgroup failed (nothing was left behind).
    Cgroup(CgroupError),
    /// Spawning failed.
    Spawn(SpawnError),
}

/// Creates the spec's cgroup (if it has one), makes the command join it before exec, spawns,
/// and hands the cgroup to the keeper for teardown.
pub(crate) fn spawn_contained(
    keeper: &mut Keeper,
    spec: &LaunchSpec,
    plan: &mut ExecPlan,
) -> Result<i32, Launch> {
    let cgroup = match &spec.cgroup {
        Some(c) => Some(c.create().map_err(|e| Launch::Cgroup(e.error))?),
        None => None,
    };
    if let Some(cg) = &cgroup {
        plan.join_cgroups(&cg.join_fds(), cg.v2_dir_fd());
    }
    let pid = keeper.spawn(plan).map_err(Launch::Spawn)?;
    if let Some(cg) = cgroup {
        keeper.adopt_cgroup(cg);
    }
    Ok(pid)
}

fn command(a: &RunArgs) -> Command {
    let mut cmd = Command::new(&a.program);
    cmd.args(&a.args).delay_to_sigkill(a.delay_to_sigkill);
    if let Some(t) = a.timeout {
        cmd.timeout(t);
    }
    if let Some(arg0) = &a.arg0 {
        cmd.arg0(arg0);
    }
    for (k, v) in &a.env {
        cmd.env(k, v);
    }
    if let Some(d) = &a.cd {
        cmd.current_dir(d);
    }
    let cred = &a.credentials;
    if let Some(u) = &cred.uid {
        match &u.login {
            // A name means initgroups semantics (primary group and supplementary groups).
            Some(login) if u.uid == login_uid(&login.name) => {
                cmd.uid(User::Name(login.name.clone()))
            }
            _ => cmd.uid(User::Id(u.uid)),
        };
    }
    if let Some(g) = &cred.gid {
        cmd.gid(Group::Id(g.gid));
    }
    if let Some(list) = &cred.groups {
        cmd.groups(list.iter().map(|g| Group::Id(g.gid)));
    }
    cmd
}

fn login_uid(name: &str) -> u32 {
    muontrap::sys::accounts::user_by_name(name)
        .ok()
        .flatten()
        .map_or(u32::MAX, |u| u.uid)
}

fn run(a: &RunArgs) -> Result<ExitCode, RunError> {
    let mut cmd = command(a);
    apply_cgroup_flags(&mut cmd, &a.cgroup).map_err(RunError::Other)?;
    let spec = cmd.resolve().map_err(RunError::Library)?;
    let started = Instant::now();
    let mut lifeline = ParentLifeline::open().map_err(|e| RunError::Other(e.to_string()))?;
    let mut keeper = Keeper::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT])
        .map_err(|e| RunError::Other(format!("cannot become a keeper: {e}")))?;
    let null = exec::open_dev_null().map_err(|e| RunError::Other(e.to_string()))?;
    let mut plan = spec
        .exec_plan(&[], null.as_raw_fd())
        .map_err(|e| RunError::Other(e.to_string()))?;
    match spawn_contained(&mut keeper, &spec, &mut plan) {
        Ok(_) => {}
        Err(Launch::Cgroup(e)) => return Err(RunError::Other(error_chain(&e))),
        Err(Launch::Spawn(SpawnError::Setup(e))) => {
            return Err(RunError::Other(format!("fork failed: {e}")));
        }
        Err(Launch::Spawn(SpawnError::Child(f))) => return Err(RunError::Start(f.stage, f.error)),
    }
    drop(plan);
    let ending = watch(
        &mut keeper,
        &mut lifeline,
        spec.delay_to_sigkill,
        spec.timeout,
    );
    keeper.release_cgroup();
    let (code, status) = match ending {
        Ending::Exited(s) => (ExitCode::of_status(ExitStatus::from_raw(s)), Some(s)),
        Ending::TimedOut(s) => (ExitCode::TimedOut, Some(s)),
        Ending::Signalled(_, Some(s)) | Ending::OwnerGone(Some(s)) => {
            (ExitCode::of_status(ExitStatus::from_raw(s)), Some(s))
        }
        Ending::Signalled(sig, None) => (ExitCode::Command((128 + sig) as u8), None),
        Ending::OwnerGone(None) | Ending::Detached => (ExitCode::RunFailure, None),
    };
    if a.stats || a.stats_json.is_some() {
        crate::stats::report(
            a.stats,
            a.stats_json.as_deref(),
            started.elapsed(),
            status,
            keeper.cgroup_statistics(),
        )
        .map_err(|e| RunError::Other(format!("writing statistics: {e}")))?;
    }
    Ok(code)
}

/// `run`'s lifeline: a pidfd of muontrap's parent; readable once the parent has exited.
struct ParentLifeline {
    pidfd: OwnedFd,
}

impl ParentLifeline {
    fn open() -> io::Result<ParentLifeline> {
        let gone = || io::Error::other("muontrap's parent process has already exited");
        let ppid = rustix::process::getppid().ok_or_else(gone)?;
        let pidfd = rustix::process::pidfd_open(ppid, rustix::process::PidfdFlags::empty())?;
        // Re-read after pinning: if the parent died before the pidfd was opened, we have been
        // re-parented already and the pidfd may name someone else.
        if rustix::process::getppid() != Some(ppid) {
            return Err(gone());
        }
        Ok(ParentLifeline { pidfd })
    }
}

impl Lifeline for ParentLifeline {
    fn fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn ready(&mut self) -> LifelineEvent {
        LifelineEvent::Gone
    }
}
