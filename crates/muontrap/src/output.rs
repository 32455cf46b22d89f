//! Collecting and streaming a command's output.
//!
//! Both pipes are read in one `poll` loop on the calling thread (no helper threads), so a
//! command that fills stderr while we wait on stdout cannot deadlock. Streaming hands each
//! line to a callback *before* reading more: a slow consumer leaves data in the kernel pipe,
//! the command blocks on write, and memory stays bounded by the line limit (backpressure).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitStatus;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::child::Child;
use crate::command::Command;
use crate::engine::keeper::poll;
use crate::error::{Error, Result};
use crate::supervise::LineSplitter;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// Its timeout fired and its tree was stopped.
    TimedOut {
        /// The configured timeout.
        after: Duration,
        /// How the stopped main process ended.
        status: ExitStatus,
    },
}

impl Outcome {
    /// The exit status, unless the command timed out.
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            Outcome::Exited(s) => Some(*s),
            Outcome::TimedOut { .. } => None,
        }
    }

    /// True if the command exited with code 0.
    pub fn success(&self) -> bool {
        self.status().is_some_and(|s| s.success())
    }
}

/// The result of [`Command::output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How it ended.
    pub outcome: Outcome,
    /// Everything written to stdout (until the end or the timeout).
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

/// Which stream a chunk or line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
}

/// Runs `program` with `args`, capturing stdout (stderr is inherited), like Elixir's
/// `MuonTrap.cmd/3`.
///
/// ```
/// let out = muontrap::cmd("echo", ["hello"])?;
/// assert_eq!(out.stdout, b"hello\n");
/// assert!(out.outcome.success());
/// # Ok::<(), muontrap::Error>(())
/// ```
pub fn cmd<I, S>(program: impl AsRef<std::ffi::OsStr>, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(program)
        .args(args)
        .stderr(crate::Stdio::inherit())
        .output()
}

pub(crate) fn collect(mut child: Child) -> Result<Output> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    pump(&mut child, usize::MAX, &mut |s, bytes| match s {
        Stream::Stdout => out.extend_from_slice(bytes),
        Stream::Stderr => err.extend_from_slice(bytes),
    })?;
    let outcome = finish(&mut child)?;
    Ok(Output {
        outcome,
        stdout: out,
        stderr: err,
    })
}

fn finish(child: &mut Child) -> Result<Outcome> {
    match child.wait() {
        Ok(s) => Ok(Outcome::Exited(s)),
        Err(Error::TimedOut { timeout, status }) => Ok(Outcome::TimedOut {
            after: timeout,
            status,
        }),
        Err(e) => Err(e),
    }
}

impl Child {
    /// Reads the command's piped stdout and stderr line by line until both close, calling
    /// `f` for each line (without its `\n`), then waits for the command. A line longer than
    /// `max_line` bytes is delivered in pieces of `max_line`; a last line without a newline is
    /// delivered at the end. Memory use is bounded by `2 × max_line`.
    pub fn for_each_line(
        &mut self,
        max_line: usize,
        mut f: impl FnMut(Stream, &[u8]),
    ) -> Result<Outcome> {
        let mut split = [LineSplitter::new(max_line), LineSplitter::new(max_line)];
        pump(self, max_line, &mut |s, bytes| {
            split[s as usize].push(bytes, &mut |line| f(s, line));
        })?;
        for s in [Stream::Stdout, Stream::Stderr] {
            split[s as usize].finish(&mut |line| f(s, line));
        }
        finish(self)
    }
}

/// Reads both pipes until end-of-file, handing chunks of at most `chunk` bytes to `sink`.
fn pump(child: &mut Child, chunk: usize, sink: &mut dyn FnMut(Stream, &[u8])) -> Result<()> {
    let mut buf = vec![0u8; chunk.clamp(1, 64 * 1024)];
    let mut open = [
        child.stdout.as_ref().map(|p| p.as_fd()),
        child.stderr.as_ref().map(|p| p.as_fd()),
    ];
    while open.iter().any(Option::is_some) {
        let live: Vec<(usize, BorrowedFd<'_>)> = open
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f)))
            .collect();
        let mut fds: Vec<PollFd<'_>> = live
            .iter()
            .map(|(_, f)| PollFd::from_borrowed_fd(*f, PollFlags::IN))
            .collect();
        poll(&mut fds, None).map_err(Error::io("polling output pipes"))?;
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        for (k, (i, fd)) in live.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => open[*i] = None,
                Ok(n) => sink(
                    if *i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    &buf[..n],
                ),
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => {
                    return Err(Error::Io {
                        doing: "reading output",
                        source: io::Error::from(e),
                    });
                }
            }
        }
    }
    Ok(())
}
