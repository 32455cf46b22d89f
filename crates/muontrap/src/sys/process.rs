//! Process-level primitives for keepers: fork of a single-threaded keeper, immediate exit,
//! descriptor plumbing, and (with tokio) readiness registration.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

/// Resource usage of all waited-for descendants (`getrusage(RUSAGE_CHILDREN)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildrenUsage {
    /// User CPU time, microseconds.
    pub user_us: u64,
    /// System CPU time, microseconds.
    pub system_us: u64,
    /// Largest resident set size of any one descendant, KiB.
    pub max_rss_kib: u64,
}

/// Usage of every descendant this process (and, transitively, its descendants) has reaped.
pub fn children_usage() -> io::Result<ChildrenUsage> {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(ChildrenUsage {
        user_us: us(ru.ru_utime),
        system_us: us(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
    })
}

/// Names the calling thread (what `ps` and `/proc/<pid>/comm` show), at most 15 bytes.
pub fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of which the kernel copies 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

/// Puts a descriptor into non-blocking mode (`O_NONBLOCK`), as a reactor needs: a read after
/// a readiness event that turns out spurious must return `EAGAIN`, not block the runtime.
/// See fcntl(2).
pub fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Closes every descriptor >= 3 except `keep`. For a keeper forked from the server, which
/// inherits the server's sockets to the owner and to other keepers: holding those would hide
/// the server's exit from the other keepers.
pub fn close_inherited_except(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing descriptors we inherited and nothing in this process owns (the fd of
        // the directory listing is already closed, and a descriptor that no longer exists
        // just fails with EBADF).
        unsafe { libc::close(fd) };
    }
}

/// This process's file mode creation mask, read from `/proc/self/status` (`umask(2)` can only
/// be read by setting it, which would race with other threads creating files).
///
/// `Umask:` is the second line, after `Name:` (at most 64 bytes even when escaped), so one
/// `read` of the head of the file is enough: three system calls on the spawn path instead of
/// reading the whole file.
pub fn current_umask() -> Option<u32> {
    let fd = rustix::fs::open(
        "/proc/self/status",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let mut head = [0u8; 256];
    let n = rustix::io::read(&fd, &mut head).ok()?;
    parse_umask(head.get(..n)?)
}

/// The `Umask:` value of a `/proc/<pid>/status` text (or its head). Bytes, not text: the
/// `Name:` line before it is the command name, which need not be UTF-8.
fn parse_umask(status: &[u8]) -> Option<u32> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Umask:"))?;
    u32::from_str_radix(std::str::from_utf8(line).ok()?.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_from_the_head_of_status() {
        assert_eq!(
            parse_umask(b"Name:\tx\xff y\nUmask:\t0027\nState:\tR"),
            Some(0o027)
        );
        assert_eq!(parse_umask(b"Name:\tx\nState:\tR\n"), None);
        // This process: the value matches what umask(2) reports (set to the same value).
        let mask = current_umask().expect("Umask: in /proc/self/status");
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
        assert_eq!(old.bits(), mask);
    }
}
