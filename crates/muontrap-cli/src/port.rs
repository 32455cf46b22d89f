//! Port mode: a drop-in for the `muontrap` helper that Elixir's MuonTrap opens as an Erlang
//! port (contract: `shared/spec/port-helper.md`).
//!
//! This process is the command's keeper. stdin is both the owner's lifeline (POLLHUP or EOF
//! means the port closed) and the acknowledgement channel of the flow-control window: each
//! byte `b` acknowledges `b + 1` bytes, and at most a window of unacknowledged output is ever
//! written to stdout. While the window is used up the capture pipe is not read, so the command
//! blocks on its own writes: backpressure with bounded memory.
//!
//! Differences from the C helper, all deliberate (spec section 10): the whole tree is stopped,
//! not just the direct child; output still in the pipe when the command exits is delivered
//! (the tree is stopped first, so the pipe reaches end-of-file, then it is drained within the
//! window as acks arrive); exit statuses come from `waitpid(-1, WNOHANG)` so a stopped child
//! cannot hang the helper; deadlines use a monotonic clock; a closed stdin (POLLNVAL) counts
//! as the port closing instead of spinning; a missing or non-executable program is reported on
//! stderr; stdout and stderr share one pipe when both are captured, which keeps their order.
//!
//! cgroups (spec section 5), with the fixes of 10.5 and 10.7: `-g` keeps the contract's
//! checks and messages (cgroup v2 at `/sys/fs/cgroup` is required, so a hybrid machine still
//! gets "cgroup v2 unified hierarchy not detected"); every write is checked, a failed setup
//! removes what it created, the command joins before exec and a failed join is an error, and
//! teardown (`cgroup.kill`, then a bounded sweep) is the library's. The extension flags
//! (`--cgroup-base`, `--memory-max`, …) use the library's layout detection and work on v1 and
//! hybrid machines too.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use muontrap::Command;
use muontrap::cgroup::CgroupError;
use muontrap::engine::keeper::{Keeper, KeeperEvent, poll};
use muontrap::engine::spec::{LaunchSpec, StdioSpec};
use muontrap::sys::exec::{self, SpawnError};
use rustix::event::{PollFd, PollFlags};

use crate::exit_code::ExitCode;
use crate::port_args::{
    CaptureMode, Credentials, PortArgs, PortArgsError, PortCommand, SystemAccounts,
    parse_port_args, usage,
};
use crate::run::Launch;

/// How long the final acknowledgement wait may stay idle (the C helper's 10 s per poll).
const ACK_IDLE: Duration = Duration::from_secs(10);

/// Runs port mode with all arguments (after `argv[0]`).
pub fn main(args: &[OsString]) -> ExitCode {
    let permute = std::env::var_os("POSIXLY_CORRECT").is_none();
    let parsed = match parse_port_args(args, permute, &SystemAccounts) {
        Ok(PortCommand::Help) => {
            print!("{}", full_usage());
            return ExitCode::Ok;
        }
        Ok(PortCommand::NoArguments) => {
            print!("{}", full_usage());
            return ExitCode::PortFailure;
        }
        Ok(PortCommand::Run(a)) => a,
        Err(e) => return fail_args(&e),
    };
    match run(&parsed) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("MUONTRAP: {msg}");
            ExitCode::PortFailure
        }
    }
}

fn full_usage() -> String {
    format!(
        "{}\nOther modes:\n  muontrap run [OPTIONS] -- PROGRAM [ARGS]   run a contained command (see 'muontrap run --help')\n  muontrap supervise FILE.toml               run daemons under a supervisor (see 'muontrap supervise --help')\n",
        usage()
    )
}

fn fail_args(e: &PortArgsError) -> ExitCode {
    if e.shows_usage() {
        let argv0 = std::env::args().next().unwrap_or_else(|| "muontrap".into());
        eprintln!("{argv0}: {e}");
        print!("{}", full_usage());
    } else {
        eprintln!("MUONTRAP: {e}");
    }
    ExitCode::PortFailure
}

fn run(a: &PortArgs) -> Result<ExitCode, String> {
    // Spec 2.5 check 6, kept as is: `-g` means cgroup v2 at /sys/fs/cgroup.
    if a.cgroup.group_path.is_some()
        && rustix::fs::access(
            "/sys/fs/cgroup/cgroup.controllers",
            rustix::fs::Access::READ_OK,
        )
        .is_err()
    {
        return Err("cgroup v2 unified hierarchy not detected at /sys/fs/cgroup.\nMuonTrap requires cgroup v2. See the MuonTrap docs for setup.".into());
    }
    let mut spec = launch_spec(a)?;
    let (capture, stdio) = capture_plan(a.capture).map_err(|e| format!("pipe: {e}"))?;
    spec.stdio = stdio.specs;
    let mut keeper = Keeper::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP])
        .map_err(|e| format!("cannot become a keeper: {e}"))?;
    let null = exec::open_dev_null().map_err(|e| format!("Can't open /dev/null: {e}"))?;
    let raw: Vec<i32> = stdio.passed.iter().map(|f| f.as_raw_fd()).collect();
    let mut plan = spec
        .exec_plan(&raw, null.as_raw_fd())
        .map_err(|e| e.to_string())?;
    match crate::run::spawn_contained(&mut keeper, &spec, &mut plan) {
        Ok(_) => {}
        Err(Launch::Cgroup(e)) => return Err(cgroup_message(a, &e)),
        Err(Launch::Spawn(SpawnError::Setup(e))) => return Err(format!("fork: {e}")),
        Err(Launch::Spawn(SpawnError::Child(f))) => {
            return Err(format!(
                "cannot start '{}' while {}: {}",
                a.program.to_string_lossy(),
                f.stage.describe(),
                f.error
            ));
        }
    }
    drop(plan);
    drop(stdio);
    let mut relay = Relay::new(a.stdio_window, capture);
    let delay = Duration::from_millis(a.delay_to_sigkill_ms.max(0) as u64);
    let code = relay.run(&mut keeper, delay);
    Ok(code)
}

/// Resolves the program and applies the port helper's credential rules (spec 2.6): setgid
/// only with `--gid`; explicit `--groups` replace the groups; otherwise a `--uid` given as a
/// name means `initgroups(name, --gid or the user's primary gid)`; a numeric uid keeps the
/// inherited groups.
fn launch_spec(a: &PortArgs) -> Result<LaunchSpec, String> {
    let mut cmd = Command::new(&a.program);
    cmd.args(&a.args);
    if let Some(arg0) = &a.arg0 {
        cmd.arg0(arg0);
    }
    crate::run::apply_cgroup_flags(&mut cmd, &a.cgroup.limits)?;
    if let Some(group) = &a.cgroup.group_path {
        // `-g` is relative to /sys/fs/cgroup (a plain string join in the C helper).
        cmd.cgroup_path(group.trim_start_matches("./"));
        let mut limits = cmd.get_cgroup_limits().clone();
        for c in a.cgroup.controllers_in_apply_order() {
            limits.controller(c);
        }
        for (_, setting) in a.cgroup.settings_in_apply_order() {
            limits.set(&setting.key, &setting.value);
        }
        cmd.cgroup_limits(limits);
    }
    let mut spec = cmd.resolve().map_err(|e| match e {
        muontrap::Error::Cgroup(c) => cgroup_message(a, &c),
        e => crate::run::error_chain(&e),
    })?;
    let Credentials { uid, gid, groups } = &a.credentials;
    spec.uid = uid.as_ref().map(|u| u.uid);
    spec.gid = gid.as_ref().map(|g| g.gid);
    spec.groups = match (groups, uid.as_ref().and_then(|u| u.login.as_ref())) {
        (Some(list), _) => Some(list.iter().map(|g| g.gid).collect()),
        (None, Some(login)) => {
            let g = spec.gid.unwrap_or(login.primary_gid);
            Some(
                muontrap::sys::accounts::group_list(&login.name, g)
                    .map_err(|e| format!("initgroups({}): {e}", login.name))?,
            )
        }
        (None, None) => None,
    };
    // Programs started by the BEAM run with SIGPIPE ignored; keep that for the command.
    spec.ignore_sigpipe = true;
    Ok(spec)
}

/// The C helper's messages for `-g` (spec 5.1–5.3); the library's error for the rest.
fn cgroup_message(a: &PortArgs, e: &CgroupError) -> String {
    let Some(group) = &a.cgroup.group_path else {
        return crate::run::error_chain(e);
    };
    let full = format!("/sys/fs/cgroup/{group}");
    match e {
        CgroupError::AlreadyExists { .. } => format!(
            "'{full}' already exists. Please specify a deeper group_path or clean up the cgroup"
        ),
        CgroupError::Create { .. } => format!("Couldn't create '{full}'. Check permissions."),
        CgroupError::MissingController { controller, .. } => format!(
            "Controller '{controller}' is not available in '{full}'.\nEnable it in the parent cgroup's cgroup.subtree_control. This usually requires root, e.g.:\n  echo +{controller} | sudo tee /sys/fs/cgroup/cgroup.subtree_control"
        ),
        CgroupError::Write { path, value, .. } if !value.starts_with('(') => {
            let key = path.file_name().map(|f| f.to_string_lossy().into_owned());
            format!(
                "Error writing '{value}' to '{full}/{}'",
                key.unwrap_or_default()
            )
        }
        other => crate::run::error_chain(other),
    }
}

struct StdioPlan {
    specs: [StdioSpec; 3],
    passed: Vec<OwnedFd>,
}

/// The capture table (spec 3.2). stdin is always inherited (it is the port's pipe); stdout is
/// never the port's pipe. When both streams are captured they share one pipe.
fn capture_plan(mode: CaptureMode) -> io::Result<(Option<OwnedFd>, StdioPlan)> {
    use StdioSpec::{Inherit, Null, Passed};
    let pipe = || -> io::Result<(OwnedFd, OwnedFd)> {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok((exec::above_stdio(r)?, exec::above_stdio(w)?))
    };
    Ok(match mode {
        CaptureMode::None => (
            None,
            StdioPlan {
                specs: [Inherit, Null, Inherit],
                passed: vec![],
            },
        ),
        CaptureMode::StderrToNull => (
            None,
            StdioPlan {
                specs: [Inherit, Null, Null],
                passed: vec![],
            },
        ),
        CaptureMode::Stdout => {
            let (r, w) = pipe()?;
            (
                Some(r),
                StdioPlan {
                    specs: [Inherit, Passed(0), Inherit],
                    passed: vec![w],
                },
            )
        }
        CaptureMode::StdoutAndStderr => {
            let (r, w) = pipe()?;
            (
                Some(r),
                StdioPlan {
                    specs: [Inherit, Passed(0), Passed(0)],
                    passed: vec![w],
                },
            )
        }
        CaptureMode::StderrOnly => {
            let (r, w) = pipe()?;
            (
                Some(r),
                StdioPlan {
                    specs: [Inherit, Null, Passed(0)],
                    passed: vec![w],
                },
            )
        }
    })
}

/// Writes all of `data` to fd 1 (the port) directly: no `std` buffering between the command's
/// output and the BEAM, and no lock.
fn write_port(mut data: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    while !data.is_empty() {
        match rustix::io::write(stdout.as_fd(), data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why the relay stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The port closed (POLLHUP, POLLNVAL, EOF or a read error on stdin).
    PortClosed,
    /// Protocol violation: more acknowledged than was sent.
    TooManyAcks,
    /// Writing to the port failed.
    WriteFailed,
    /// muontrap got SIGTERM/SIGINT/SIGQUIT/SIGHUP.
    Signal,
}

/// The output relay and its flow-control window.
struct Relay {
    max: usize,
    avail: usize,
    capture: Option<OwnedFd>,
    buf: Vec<u8>,
}

impl Relay {
    fn new(window: usize, capture: Option<OwnedFd>) -> Relay {
        Relay {
            max: window,
            avail: window,
            capture,
            buf: vec![0u8; window.min(64 * 1024)],
        }
    }

    fn run(&mut self, keeper: &mut Keeper, delay: Duration) -> ExitCode {
        let stdin = io::stdin();
        let stdin = stdin.as_fd();
        let stopped = loop {
            let (in_ev, sig_ev, cap_ev) = {
                let mut fds = vec![
                    PollFd::from_borrowed_fd(stdin, PollFlags::IN),
                    PollFd::from_borrowed_fd(keeper.signal_fd(), PollFlags::IN),
                ];
                let cap = self.capture.as_ref().filter(|_| self.avail > 0);
                if let Some(c) = cap {
                    fds.push(PollFd::new(c, PollFlags::IN));
                }
                if let Err(e) = poll(&mut fds, None) {
                    eprintln!("MUONTRAP: poll: {e}");
                    break Some(Stop::PortClosed);
                }
                (
                    fds[0].revents(),
                    !fds[1].revents().is_empty(),
                    fds.get(2).is_some_and(|f| !f.revents().is_empty()),
                )
            };
            if in_ev.intersects(PollFlags::HUP | PollFlags::NVAL | PollFlags::ERR) {
                break Some(Stop::PortClosed);
            }
            if in_ev.contains(PollFlags::IN) {
                if let Err(stop) = self.read_acks(stdin) {
                    break Some(stop);
                }
            }
            if cap_ev {
                if let Err(stop) = self.forward() {
                    break Some(stop);
                }
            }
            if sig_ev {
                let events = keeper.events().unwrap_or_default();
                if events.iter().any(|e| matches!(e, KeeperEvent::Signal(_))) {
                    break Some(Stop::Signal);
                }
            }
            if keeper.main_status().is_some() {
                break None;
            }
        };
        // Stop what is left of the tree: everything (stopped), or leftovers of an exited
        // command, whose end also closes the capture pipe for the drain below.
        keeper.stop_tree(delay);
        keeper.release_cgroup();
        let code = match (stopped, keeper.main_status()) {
            (None, Some(raw)) => ExitCode::of_status(ExitStatus::from_raw(raw)),
            _ => ExitCode::PortFailure,
        };
        match stopped {
            None => {
                // Deliver every byte the command wrote, within the window, then the acks.
                if self.drain(stdin).is_ok() {
                    self.await_acks(stdin);
                }
            }
            Some(Stop::PortClosed) => {}
            Some(_) => self.await_acks(stdin),
        }
        code
    }

    /// Reads up to 32 ack bytes: each byte `b` acknowledges `b + 1` bytes.
    fn read_acks(&mut self, stdin: BorrowedFd<'_>) -> Result<(), Stop> {
        let mut acks = [0u8; 32];
        match rustix::io::read(stdin, &mut acks) {
            Ok(0) => Err(Stop::PortClosed),
            Ok(n) => {
                let credit: usize = acks[..n].iter().map(|&b| b as usize + 1).sum();
                self.avail += credit;
                if self.avail > self.max {
                    Err(Stop::TooManyAcks)
                } else {
                    Ok(())
                }
            }
            // The command shares stdin and may have taken the bytes first.
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(()),
            Err(_) => Err(Stop::PortClosed),
        }
    }

    /// Moves at most `avail` bytes from the capture pipe to the port.
    fn forward(&mut self) -> Result<(), Stop> {
        let Some(cap) = &self.capture else {
            return Ok(());
        };
        let want = self.avail.min(self.buf.len());
        match rustix::io::read(cap, &mut self.buf[..want]) {
            Ok(0) => {
                self.capture = None;
                Ok(())
            }
            Ok(n) => {
                self.avail -= n;
                write_port(&self.buf[..n]).map_err(|_| Stop::WriteFailed)
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(()),
            Err(_) => {
                self.capture = None;
                Ok(())
            }
        }
    }

    /// After the tree is gone: forward the rest of the pipe until end-of-file, waiting for
    /// acks when the window is used up. Gives up if the port closes or stays silent for
    /// [`ACK_IDLE`].
    fn drain(&mut self, stdin: BorrowedFd<'_>) -> Result<(), Stop> {
        while self.capture.is_some() {
            if self.avail > 0 {
                self.forward()?;
                continue;
            }
            let mut fds = [PollFd::from_borrowed_fd(stdin, PollFlags::IN)];
            match poll(&mut fds, Some(ACK_IDLE)) {
                Ok(0) | Err(_) => return Err(Stop::PortClosed),
                Ok(_) => {}
            }
            let ev = fds[0].revents();
            if ev.intersects(PollFlags::HUP | PollFlags::NVAL | PollFlags::ERR) {
                return Err(Stop::PortClosed);
            }
            self.read_acks(stdin)?;
        }
        Ok(())
    }

    /// Waits for outstanding acks so the BEAM never writes into a closed pipe (`:epipe`);
    /// an inactivity timeout of [`ACK_IDLE`] per wait.
    fn await_acks(&mut self, stdin: BorrowedFd<'_>) {
        while self.avail < self.max {
            let mut fds = [PollFd::from_borrowed_fd(stdin, PollFlags::IN)];
            match poll(&mut fds, Some(ACK_IDLE)) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::NVAL | PollFlags::ERR)
                && !fds[0].revents().contains(PollFlags::IN)
            {
                return;
            }
            if self.read_acks(stdin).is_err() {
                return;
            }
        }
    }
}
