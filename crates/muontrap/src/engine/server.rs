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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::control::{Control, Message};
use super::keeper::Keeper;
use super::spec::LaunchSpec;
use super::watch::{Ending, Lifeline, LifelineEvent, watch};
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
    process::set_name(c"mt-keeper-srv");
    // Tell the owner the hook ran and we are a keeper server, not its program.
    fdpass::send_with_fds(sock.as_fd(), b"K", &[])?;
    // A spare keeper is forked *before* each request arrives, so a spawn does not wait for a
    // fork: the request is handed to the spare, and the next spare is forked while the
    // command starts (on another core, if there is one).
    let mut spare: Option<OwnedFd> = None;
    loop {
        if spare.is_none() {
            spare = fork_spare(&null).ok();
        }
        let Some((payload, fds)) = read_request(&sock)? else {
            return Ok(()); // the owner is gone
        };
        let handed = spare.take().is_some_and(|to_spare| {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
            fdpass::send_with_fds(to_spare.as_fd(), &frame(&payload), &borrowed).is_ok()
        });
        if handed {
            continue; // our copies of the command's descriptors close here
        }
        // No spare (fork failed earlier, or it died): fork a keeper for this request now.
        match process::fork_keeper() {
            Ok(Forked::Child) => {
                let keeper = Keeper::new(&[libc::SIGTERM]);
                process::exit_now(keep_one(keeper, &payload, fds, &null))
            }
            Ok(Forked::Parent(_)) => {}
            Err(e) => {
                if let Some(control) = fds.into_iter().next() {
                    let _ = Control::from_fd(control).send(Message::Failed {
                        stage: 0,
                        errno: e.raw_os_error().unwrap_or(0),
                    });
                }
            }
        }
    }
}

/// A request on the wire: a little-endian length, then the encoded spec.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(4 + payload.len());
    msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// Reads one framed request and its descriptors (the control socket first). `None` at
/// end-of-stream.
fn read_request(sock: &OwnedFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut hdr = [0u8; 4];
    let (n, fds) = fdpass::recv_with_fds(sock.as_fd(), &mut hdr)?;
    if n == 0 {
        return Ok(None);
    }
    fdpass::read_exact(sock, &mut hdr[n..])?;
    let len = u32::from_le_bytes(hdr) as usize;
    if len > MAX_SPEC || fds.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request"));
    }
    let mut payload = vec![0u8; len];
    fdpass::read_exact(sock, &mut payload)?;
    Ok(Some((payload, fds)))
}

/// Forks a keeper that prepares itself (subreaper, signalfd) and then waits for one request
/// on a socket from the server. Returns the server's end.
fn fork_spare(null: &OwnedFd) -> io::Result<OwnedFd> {
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // The server is single-threaded (it runs before the host program's `main` and starts no
    // threads), so the forked keeper may run ordinary code.
    match process::fork_keeper()? {
        Forked::Child => {
            drop(ours);
            // Our stdin is the server's socket to the owner: not ours to hold.
            let _ = process::redirect(null, 0);
            let keeper = Keeper::new(&[libc::SIGTERM]);
            let code = match read_request(&theirs) {
                Ok(Some((payload, fds))) => keep_one(keeper, &payload, fds, null),
                _ => 0, // the server went away before using us
            };
            process::exit_now(code)
        }
        Forked::Parent(_) => Ok(ours),
    }
}

/// The keeper of one command, in a process forked from the server. Returns the exit code.
fn keep_one(
    keeper: io::Result<Keeper>,
    payload: &[u8],
    mut passed: Vec<OwnedFd>,
    null: &OwnedFd,
) -> i32 {
    let control = Control::from_fd(passed.remove(0));
    let fail = |stage: u32, e: &io::Error| {
        let _ = control.send(Message::Failed {
            stage,
            errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        });
        1
    };
    // Our stdin was the server socket; nobody should see it.
    let _ = process::redirect(null, 0);
    process::set_name(c"mt-keeper");
    let spec = match LaunchSpec::decode(payload) {
        Ok(s) => s,
        Err(e) => return fail(0, &e),
    };
    let mut keeper = match keeper {
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
    let ending = watch(
        &mut keeper,
        &mut ControlLifeline(&control),
        spec.delay_to_sigkill,
        spec.timeout,
    );
    let report = match ending {
        Ending::Exited(s) => Message::Exited(s),
        Ending::TimedOut(s) => Message::TimedOut(s),
        // SIGTERM to the keeper itself: the tree was stopped; report like any exit.
        Ending::Signalled(_, Some(s)) => Message::Exited(s),
        _ => return 0,
    };
    let _ = control.send(report);
    0
}

/// The library's lifeline: the command's control socket.
struct ControlLifeline<'a>(&'a Control);

impl Lifeline for ControlLifeline<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    fn ready(&mut self) -> LifelineEvent {
        match self.0.recv(false) {
            Ok(Some(Message::Signal(s))) => LifelineEvent::Signal(s),
            Ok(Some(Message::Terminate)) => LifelineEvent::Terminate,
            Ok(Some(Message::Kill)) => LifelineEvent::Kill,
            Ok(Some(Message::Detach)) => LifelineEvent::Detach,
            Ok(Some(_)) => LifelineEvent::Nothing,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => LifelineEvent::Nothing,
            // End of stream: the owner dropped the handle, exited, crashed or was killed.
            Ok(None) | Err(_) => LifelineEvent::Gone,
        }
    }
}
