//! Hidden modes of the bench binary itself, used as the process trees under test.
//!
//! - `__fanout N [ignore-term]`: the process forks N-1 children that `pause()`; once all exist
//!   it prints `ready\n`. With `ignore-term`, every member ignores SIGTERM.
//! - `__chain DEPTH`: a chain of DEPTH processes, each forking one child; the deepest prints
//!   `ready\n`.
//! - `__first`: times this process's first muontrap spawn (which starts its keeper server) and
//!   prints the nanoseconds.
//!
//! They run before anything else in `main`, in a single-threaded process, so `fork` is safe.

use std::io::Write;
use std::time::Instant;

fn write_all(fd: i32, bytes: &[u8]) {
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: writing from a live buffer.
        let r = unsafe { libc::write(fd, bytes[off..].as_ptr().cast(), bytes.len() - off) };
        if r <= 0 {
            return;
        }
        off += r as usize;
    }
}

fn pause_forever() -> ! {
    loop {
        // SAFETY: plain syscall.
        unsafe {
            libc::pause();
        }
    }
}

fn fork_or_die() -> i32 {
    // SAFETY: the helper process is single-threaded; the child only makes syscalls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!(
            "muontrap-bench helper: fork: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: plain syscall.
        unsafe { libc::_exit(1) }
    }
    pid
}

/// `__fanout N [ignore-term]`.
pub fn fanout(n: usize, ignore_term: bool) -> ! {
    let mut fds = [0i32; 2];
    // SAFETY: plain syscalls on our own descriptors and signal disposition.
    unsafe {
        if ignore_term {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
        }
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            libc::_exit(1);
        }
    }
    for _ in 1..n {
        if fork_or_die() == 0 {
            // SAFETY: plain syscall.
            unsafe {
                libc::close(fds[0]);
            }
            write_all(fds[1], b"+");
            // SAFETY: plain syscall.
            unsafe {
                libc::close(fds[1]);
            }
            pause_forever();
        }
    }
    // SAFETY: plain syscall.
    unsafe {
        libc::close(fds[1]);
    }
    let mut got = 0usize;
    let mut buf = [0u8; 512];
    while got + 1 < n {
        // SAFETY: reading into a live buffer.
        let r = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        got += r as usize;
    }
    write_all(1, b"ready\n");
    pause_forever();
}

/// `__chain DEPTH`.
pub fn chain(depth: usize) -> ! {
    for _ in 1..depth {
        if fork_or_die() > 0 {
            pause_forever();
        }
    }
    write_all(1, b"ready\n");
    pause_forever();
}

/// `__first MARKER`: one muontrap spawn+wait of `/bin/true`, the first in this process.
pub fn first(marker: &str) -> ! {
    let t0 = Instant::now();
    let status = muontrap::Command::new("/bin/true")
        .env(crate::procscan::MARKER_VAR, marker)
        .status();
    let ns = t0.elapsed().as_nanos();
    match status {
        Ok(s) if s.success() => {
            println!("{ns}");
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        other => {
            eprintln!("muontrap-bench __first: {other:?}");
            std::process::exit(1)
        }
    }
}
