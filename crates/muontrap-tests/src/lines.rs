//! Waiting for a line from a child's output, with a deadline.
//!
//! Tests wait for the fixture's `ready` line instead of sleeping. A plain
//! `BufRead` would block forever if the line never comes, and its buffer
//! would swallow data after the line that the test wants to read next. So
//! this reads one byte at a time after `poll(2)` says there is something:
//! slow, but it never reads past the line and always honours the timeout.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// Reads lines from `fd` until one equals or starts with `expect`.
///
/// Returns that line (without its newline). Fails on timeout, EOF or a read
/// error, with a message that includes everything read so far. Nothing after
/// the matching line is consumed.
///
/// ```no_run
/// # use muontrap_tests::{fixture, wait_for_line};
/// # use std::{process::{Command, Stdio}, time::Duration};
/// let mut child = Command::new(fixture()).arg("forever").stdout(Stdio::piped()).spawn().unwrap();
/// let stdout = child.stdout.take().unwrap();
/// wait_for_line(&stdout, "ready", Duration::from_secs(10)).unwrap();
/// # child.kill().unwrap();
/// ```
pub fn wait_for_line(fd: impl AsFd, expect: &str, timeout: Duration) -> Result<String, String> {
    let fd = fd.as_fd();
    let deadline = Instant::now() + timeout;
    let mut transcript = Vec::new();
    let mut line = Vec::new();
    let failure = |why: &str, transcript: &[u8], line: &[u8]| {
        format!(
            "{why} waiting for a line starting with {expect:?}; read so far: {:?}",
            String::from_utf8_lossy(&[transcript, line].concat())
        )
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failure("timed out", &transcript, &line));
        }
        let wait = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(failure(&format!("poll failed ({e})"), &transcript, &line)),
        }
        let mut byte = [0u8; 1];
        match rustix::io::read(fd, &mut byte) {
            Ok(0) => return Err(failure("EOF", &transcript, &line)),
            Ok(_) if byte[0] == b'\n' => {
                let text = String::from_utf8_lossy(&line).into_owned();
                if text.starts_with(expect) {
                    return Ok(text);
                }
                transcript.append(&mut line);
                transcript.push(b'\n');
            }
            Ok(_) => line.push(byte[0]),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => return Err(failure(&format!("read failed ({e})"), &transcript, &line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_with(text: &[u8]) -> std::os::fd::OwnedFd {
        let (read, write) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&write, text).unwrap();
        read
    }

    #[test]
    fn finds_line_and_leaves_the_rest() {
        let read = pipe_with(b"noise\ndaemon 42\nready\nafter\n");
        let line = wait_for_line(&read, "daemon", Duration::from_secs(5)).unwrap();
        assert_eq!(line, "daemon 42");
        assert_eq!(
            wait_for_line(&read, "ready", Duration::from_secs(5)).unwrap(),
            "ready"
        );
        let mut rest = [0u8; 16];
        let n = rustix::io::read(&read, &mut rest).unwrap();
        assert_eq!(&rest[..n], b"after\n");
    }

    #[test]
    fn eof_reports_what_was_read() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&write, b"one\ntwo").unwrap();
        drop(write);
        let err = wait_for_line(&read, "ready", Duration::from_secs(5)).unwrap_err();
        assert!(err.starts_with("EOF"), "{err}");
        assert!(err.contains("one\\ntwo"), "{err}");
    }

    #[test]
    fn times_out_without_a_line() {
        let (read, _write) = rustix::pipe::pipe().unwrap();
        let start = Instant::now();
        let err = wait_for_line(&read, "ready", Duration::from_millis(50)).unwrap_err();
        assert!(err.starts_with("timed out"), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
