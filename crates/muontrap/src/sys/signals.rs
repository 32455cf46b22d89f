//! Signals as file descriptors.
//!
//! A keeper waits on several things at once (its lifeline, its children, its own termination
//! signals, output pipes), so signals are turned into a readable descriptor with `signalfd(2)`
//! and read in the same `poll` as everything else. The signals are blocked in the keeper;
//! [`super::exec`] unblocks them in the command before exec, so the command never inherits the
//! mask. SIGCHLD is coalesced by the kernel: one read may stand for many exits, which is why
//! the keeper always reaps with `waitpid(-1, WNOHANG)` in a loop rather than trusting counts.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A `signalfd` reading a fixed set of (blocked) signals.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` in the calling thread and opens a non-blocking, close-on-exec
    /// `signalfd` for them. [`signalfd(2)`](https://man7.org/linux/man-pages/man2/signalfd.2.html)
    pub fn new(signals: &[i32]) -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it; sigprocmask and
        // signalfd only read it. The returned descriptor is new and owned by us.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Reads every pending signal number (deduplicated by the kernel per signal).
    pub fn drain(&self) -> io::Result<Vec<i32>> {
        let mut out = Vec::new();
        loop {
            let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
            match rustix::io::read(&self.fd, &mut info) {
                Ok(n) if n == info.len() => {
                    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                    out.push(signo as i32);
                }
                Ok(_) => break,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Sets the disposition of each signal to "ignore".
pub fn ignore(signals: &[i32]) -> io::Result<()> {
    set_disposition(signals, libc::SIG_IGN)
}

/// Sets the disposition of each signal back to the default.
pub fn default(signals: &[i32]) -> io::Result<()> {
    set_disposition(signals, libc::SIG_DFL)
}

fn set_disposition(signals: &[i32], disp: libc::sighandler_t) -> io::Result<()> {
    for &s in signals {
        // SAFETY: SIG_IGN / SIG_DFL are not handlers that run code; no memory is involved.
        if unsafe { libc::signal(s, disp) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Unblocks every signal in the calling thread.
pub fn unblock_all() -> io::Result<()> {
    // SAFETY: plain-data sigset initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `pidfd_send_signal` with any signal number, including ones rustix has no name for.
pub fn pidfd_send(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: raw syscall with an fd we borrow for the duration, a null siginfo and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
