//! The owner's side of the keeper server: start it once, send it commands.
//!
//! One server per owner process, started lazily on the first spawn and shared by all threads
//! (requests are a few hundred bytes and are serialised by a mutex; the fork happens in the
//! server, so spawning never forks the owner). A server that died is restarted on the next
//! spawn; a forked owner (a different pid) starts its own.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::control::{Control, Message};
use super::keeper::poll;
use super::spec::LaunchSpec;
use crate::sys::{fdpass, hook};

/// Why the keeper could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// This executable does not carry the keeper hook (e.g. muontrap linked into a shared
    /// library loaded by another program).
    #[error(
        "the keeper hook is not present in this executable (is muontrap linked into a shared library?)"
    )]
    HookMissing,
    /// This program runs setuid/setgid (`AT_SECURE`): re-executing it as a keeper server is
    /// refused, since a keeper server spawns whatever it is asked to with its privileges.
    #[error("muontrap's keeper server cannot run in a setuid or setgid program")]
    SecureMode,
    /// Starting or talking to the keeper server failed.
    #[error("keeper server unavailable")]
    Server(#[source] io::Error),
    /// The command's keeper failed before the command ran.
    #[error("the keeper failed to set up the command")]
    Setup(#[source] io::Error),
}

/// A command accepted by its keeper: the owner end of its control channel and its pid.
#[derive(Debug)]
pub struct Launched {
    /// Control channel (also the lifeline: dropping it stops the tree).
    pub control: Control,
    /// The command's pid.
    pub pid: i32,
}

/// The outcome of a launch request that reached a keeper.
#[derive(Debug)]
pub enum LaunchResult {
    /// Running.
    Running(Launched),
    /// The child failed at this `ExecStage` number with this errno.
    ChildFailed {
        /// Stage number (see `sys::exec::ExecStage`).
        stage: u32,
        /// errno.
        errno: i32,
    },
}

struct Server {
    sock: OwnedFd,
    owner_pid: u32,
    process: std::process::Child,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Sends `spec` (with `fds`, referenced by index from the spec's stdio) to a keeper and waits
/// until the command has been exec'd or has failed.
pub fn launch(spec: &LaunchSpec, fds: &[BorrowedFd<'_>]) -> Result<LaunchResult, KeeperError> {
    let (control, theirs) = Control::pair().map_err(KeeperError::Server)?;
    let payload = spec.encode();
    let mut msg = Vec::with_capacity(4 + payload.len());
    msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    msg.extend_from_slice(&payload);
    let mut all: Vec<BorrowedFd<'_>> = vec![theirs.as_fd()];
    all.extend_from_slice(fds);
    {
        let mut guard = SERVER.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let server = ensure_server(&mut guard)?;
            match fdpass::send_with_fds(server.sock.as_fd(), &msg, &all) {
                Ok(()) => break,
                Err(e) if attempts < 2 => {
                    tracing::debug!(error = %e, "keeper server gone; restarting it");
                    if let Some(mut old) = guard.take() {
                        let _ = old.process.kill();
                        let _ = old.process.wait();
                    }
                }
                Err(e) => return Err(KeeperError::Server(e)),
            }
        }
    }
    drop(theirs);
    match control.recv(true).map_err(KeeperError::Setup)? {
        Some(Message::Spawned(pid)) => Ok(LaunchResult::Running(Launched { control, pid })),
        Some(Message::Failed { stage: 0, errno }) => {
            Err(KeeperError::Setup(io::Error::from_raw_os_error(errno)))
        }
        Some(Message::Failed { stage, errno }) => Ok(LaunchResult::ChildFailed { stage, errno }),
        Some(other) => Err(KeeperError::Setup(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected keeper message {other:?}"),
        ))),
        None => Err(KeeperError::Setup(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "keeper exited before the command started",
        ))),
    }
}

fn ensure_server(slot: &mut Option<Server>) -> Result<&mut Server, KeeperError> {
    let me = std::process::id();
    if slot.as_ref().is_some_and(|s| s.owner_pid != me) {
        // We are a fork of the process that started it: that server is not ours to use.
        if let Some(s) = slot.take() {
            std::mem::forget(s.process);
        }
    }
    if slot.is_none() {
        *slot = Some(start_server()?);
    }
    Ok(slot.as_mut().expect("just set"))
}

fn start_server() -> Result<Server, KeeperError> {
    if !hook::armed() {
        return Err(KeeperError::HookMissing);
    }
    if hook::secure_mode() {
        return Err(KeeperError::SecureMode);
    }
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| KeeperError::Server(e.into()))?;
    let exe = std::env::var_os("MUONTRAP_KEEPER_EXE").unwrap_or_else(|| "/proc/self/exe".into());
    let process = std::process::Command::new(&exe)
        .arg0("muontrap-keeper")
        .arg(OsStr::from_bytes(hook::KEEPER_ARG.to_bytes()))
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(KeeperError::Server)?;
    let server = Server {
        sock: ours,
        owner_pid: std::process::id(),
        process,
    };
    // Wait for the hello that proves the hook ran; anything else means the executable did not
    // become a keeper, so stop it at once.
    let mut fds = [PollFd::new(&server.sock, PollFlags::IN)];
    let ready = poll(&mut fds, Some(Duration::from_secs(10))).map_err(KeeperError::Server)?;
    let mut hello = [0u8; 1];
    let ok = ready > 0
        && matches!(rustix::io::read(&server.sock, &mut hello), Ok(1))
        && hello[0] == b'K';
    if !ok {
        let mut p = server.process;
        let _ = p.kill();
        let _ = p.wait();
        return Err(KeeperError::Server(io::Error::other(
            "the keeper server did not start (no hello)",
        )));
    }
    Ok(server)
}
