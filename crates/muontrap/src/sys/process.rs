//! Process-level primitives for keepers: fork of a single-threaded keeper, immediate exit,
//! descriptor plumbing, and (with tokio) readiness registration.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Result of [`fork_keeper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// We are the new process.
    Child,
    /// We are the parent; this is the child's pid.
    Parent(i32),
}

/// `fork(2)` for a single-threaded keeper process. In a single-threaded process the child may
/// run ordinary code (allocation, locks) because no other thread can hold a lock at the fork.
/// Only the keeper server calls this; it never starts threads.
pub fn fork_keeper() -> io::Result<Forked> {
    debug_assert_eq!(
        thread_count(),
        Some(1),
        "fork_keeper from a threaded process"
    );
    // SAFETY: fork has no memory-safety preconditions; the single-thread requirement that
    // makes running arbitrary code in the child sound is documented above and debug-checked.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

fn thread_count() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Ends the process at once with `code`: no unwinding, no `atexit` handlers of the host
/// program (the keeper runs inside someone else's executable).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Takes ownership of descriptor 0 (the keeper server's socket to its owner).
pub fn take_stdin() -> OwnedFd {
    // SAFETY: called once, by the keeper server at start, when fd 0 is the socket the owner
    // passed as stdin and nothing else in the process refers to it.
    unsafe { OwnedFd::from_raw_fd(0) }
}

/// Points descriptor `target` (0, 1 or 2) at `src`.
pub fn redirect(src: &OwnedFd, target: i32) -> io::Result<()> {
    assert!((0..=2).contains(&target));
    // SAFETY: dup2 onto a standard descriptor number; `src` is a valid open descriptor.
    if unsafe { libc::dup2(src.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers an owned descriptor with the tokio reactor for readability.
#[cfg(feature = "tokio")]
pub fn tokio_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns the descriptor: it stays open and refers to the same file for
    // the whole life of the AsyncFd, and `as_raw_fd` always returns the same number.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}
