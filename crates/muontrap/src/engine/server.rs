//! The keeper side of the library face: a fork server, and the keeper loop it forks per
//! command.
//!
//! Why a fork server: the owner must never fork itself (it may be a big multi-threaded tokio
//! program: a fork would pin a copy-on-write snapshot of its memory for the keeper's whole
//! life, and only async-signal-safe code may run in it). Exec'ing a keeper binary per command
//! costs an extra exec on every spawn. So the first spawn of an owner process starts *one*
//! keeper server (its own executable re-exec'd with a hidden argument, intercepted before
//! `main` by [`crate::sys::hook`]); the server is small and single-threaded, so forking it is
//! cheap and safe, and each fork becomes the keeper of one command.
//!
//! The per-command keeper holds the command's control socket (see [`super::control`]): that
//! socket, not the server, is the command's lifeline. If the server dies, running keepers are
//! unaffected; if the owner dies, every keeper sees end-of-stream and stops its tree.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::control::{Control, Message};
use super::keeper::{Keeper, KeeperEvent, poll};
use super::spec::LaunchSpec;
use crate::sys::exec::{self, SpawnError};
use crate::sys::fdpass;
use crate::sys::process::{self, Forked};
use crate::sys::signals;

/// Largest accepted spec (argv + environment are bounded by the kernel far below this).
const MAX_SPEC: usize = 64 << 20;

/// Runs the fork server on descriptor 0 and exits the process. Called from the pre-`main` hook.
pub fn serve_stdin() -> ! {
    let sock = process::take_stdin();
    let code = match serve(sock) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("muontrap keeper server: {e}");
            1
        }
    };
    process::exit_now(code)
}

fn serve(sock: OwnedFd) -> io::Result<()> {
    // Terminal signals go to the owner; if it dies, lifelines close. Keepers must survive
    // long enough to clean up, so they ignore them. SIGCHLD ignored: the kernel reaps the
    // per-command keepers we fork (they reset it for themselves).
    signals::ignore(&[
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGCHLD,
    ])?;
    signals::unblock_all()?;
    let null = exec::open_dev_null()?;
    // Tell the owner the hook ran and we are a keeper server, not its program.
    fdpass::send_with_fds(sock.as_fd(), b"K", &[])?;
    loop {
        let mut hdr = [0u8; 4];
        let (n, mut fds) = fdpass::recv_with_fds(sock.as_fd(), &mut hdr)?;
        if n == 0 {
            return Ok(()); // the owner is gone
        }
        fdpass::read_exact(&sock, &mut hdr[n..])?;
        let len = u32::from_le_bytes(hdr) as usize;
        if len > MAX_SPEC || fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request"));
        }
        let mut payload = vec![0u8; len];
        fdpass::read_exact(&sock, &mut payload)?;
        let control = fds.remove(0);
        // The server is single-threaded (it runs before the host program's `main` and starts
        // no threads), so the forked keeper may run ordinary code.
        match process::fork_keeper() {
            Ok(Forked::Child) => {
                drop(sock);
                let code = keep_one(&payload, Control::from_fd(control), fds, &null);
                process::exit_now(code)
            }
            Ok(Forked::Parent(_)) => {}
            Err(e) => {
                let _ = Control::from_fd(control).send(Message::Failed {
                    stage: 0,
                    errno: e.raw_os_error().unwrap_or(0),
                });
            }
        }
        // Parent: our copies of the command's descriptors close here.
    }
}

/// The keeper of one command, in a process forked from the server. Returns the exit code.
fn keep_one(payload: &[u8], control: Control, passed: Vec<OwnedFd>, null: &OwnedFd) -> i32 {
    let fail = |stage: u32, e: &io::Error| {
        let _ = control.send(Message::Failed {
            stage,
            errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        });
        1
    };
    // Our stdin was the server socket; nobody should see it.
    let _ = process::redirect(null, 0);
    let spec = match LaunchSpec::decode(payload) {
        Ok(s) => s,
        Err(e) => return fail(0, &e),
    };
    let mut keeper = match Keeper::new(&[libc::SIGTERM]) {
        Ok(k) => k,
        Err(e) => return fail(0, &e),
    };
    let raw: Vec<RawFd> = passed.iter().map(|f| f.as_raw_fd()).collect();
    let plan = match spec.exec_plan(&raw, null.as_raw_fd()) {
        Ok(p) => p,
        Err(e) => return fail(0, &e),
    };
    match keeper.spawn(&plan) {
        Ok(pid) => {
            let _ = control.send(Message::Spawned(pid));
        }
        Err(SpawnError::Setup(e)) => return fail(0, &e),
        Err(SpawnError::Child(f)) => return fail(f.stage as u32, &f.error),
    }
    // The command has its copies; ours would keep pipes open past the command's exit.
    drop(passed);
    drop(plan);
    watch(&mut keeper, &control, spec.delay_to_sigkill, spec.timeout);
    0
}

/// The library keeper loop: follow owner requests, stop the tree when the owner goes or the
/// timeout fires, report the exit once the whole tree is gone.
fn watch(keeper: &mut Keeper, control: &Control, delay: Duration, timeout: Option<Duration>) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut owner_present = true;
    let mut detached = false;
    let mut timed_out = false;
    loop {
        if let Some(status) = keeper.main_status() {
            if detached {
                // Nobody to report to and nothing to stop: just reap until the tree is gone.
                while keeper.tree_alive() {
                    wait_fd(keeper, None);
                }
                return;
            }
            keeper.stop_tree(delay);
            let msg = if timed_out {
                Message::TimedOut(status)
            } else {
                Message::Exited(status)
            };
            let _ = control.send(msg);
            return;
        }
        let timeout_left = if detached {
            None
        } else {
            deadline.map(|d| d.saturating_duration_since(Instant::now()))
        };
        if timeout_left == Some(Duration::ZERO) {
            timed_out = true;
            keeper.stop_tree(delay);
            continue;
        }
        let (control_ready, signal_ready) = {
            let sigfd = keeper.signal_fd();
            let mut fds = vec![PollFd::from_borrowed_fd(sigfd, PollFlags::IN)];
            if owner_present {
                fds.push(PollFd::new(control, PollFlags::IN));
            }
            let _ = poll(&mut fds, timeout_left);
            let c = fds.get(1).is_some_and(|f| !f.revents().is_empty());
            (c, !fds[0].revents().is_empty())
        };
        if signal_ready {
            for ev in keeper.events().unwrap_or_default() {
                if let KeeperEvent::Signal(_) = ev {
                    // SIGTERM to the keeper itself: graceful stop, then report.
                    keeper.stop_tree(delay);
                }
            }
        }
        if control_ready {
            match control.recv(false) {
                Ok(Some(Message::Signal(s))) => {
                    let _ = keeper.signal_main(s);
                }
                Ok(Some(Message::Terminate)) => {
                    keeper.stop_tree(delay);
                }
                Ok(Some(Message::Kill)) => {
                    keeper.stop_tree(Duration::ZERO);
                }
                Ok(Some(Message::Detach)) => {
                    detached = true;
                    owner_present = false;
                }
                Ok(Some(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(None) | Err(_) => {
                    // The owner is gone (dropped, exited, crashed or killed).
                    owner_present = false;
                    if !detached {
                        keeper.stop_tree(delay);
                    }
                }
            }
        }
        if !owner_present && !detached && !keeper.tree_alive() {
            return;
        }
    }
}

fn wait_fd(keeper: &mut Keeper, timeout: Option<Duration>) {
    let mut fds = [PollFd::from_borrowed_fd(keeper.signal_fd(), PollFlags::IN)];
    let _ = poll(&mut fds, timeout);
    let _ = keeper.events();
}
