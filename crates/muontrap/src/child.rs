//! [`Child`]: the handle of a running contained command.
//!
//! The handle owns the command's control channel, which is also its lifeline: dropping the
//! handle closes it and the keeper stops the whole tree (SIGTERM, `delay_to_sigkill`, SIGKILL).
//! Drop never blocks; the keeper does the work. [`Child::detach`] is the explicit way out.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::cgroup::{CgroupHandle, Statistics};
use crate::engine::client::Launched;
use crate::engine::control::{Control, Message};
use crate::error::{Error, Result};

/// A running contained command.
#[derive(Debug)]
pub struct Child {
    /// The owner's end of the command's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The owner's end of the command's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The owner's end of the command's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    program: String,
    pid: u32,
    control: Option<Control>,
    timeout: Option<Duration>,
    ended: Option<Ended>,
    cgroup: Option<Box<CgroupHandle>>,
}

#[derive(Debug, Clone, Copy)]
struct Ended {
    status: ExitStatus,
    timed_out: bool,
}

impl Child {
    pub(crate) fn new_parts(program: String) -> Child {
        Child {
            stdin: None,
            stdout: None,
            stderr: None,
            program,
            pid: 0,
            control: None,
            timeout: None,
            ended: None,
            cgroup: None,
        }
    }

    pub(crate) fn set_cgroup(&mut self, cgroup: Option<CgroupHandle>) {
        self.cgroup = cgroup.map(Box::new);
    }

    /// The command's cgroup, if it was given one ([`crate::Command::cgroup_base`] or
    /// [`crate::Command::cgroup_path`]): statistics, settings, freeze and thaw, by path. The
    /// keeper removes the cgroup when the command's tree is gone; after [`Child::wait`] the
    /// handle's statistics are the final ones ([`Child::cgroup_statistics`]), while settings
    /// can no longer be read.
    pub fn cgroup(&self) -> Option<&CgroupHandle> {
        self.cgroup.as_deref()
    }

    /// The cgroup's final statistics, read by the keeper just before it removed the cgroup
    /// (peak memory, OOM kills, CPU time of the whole tree, …). `None` until the command has
    /// ended ([`Child::wait`], or [`Child::try_wait`] returning a status), and for a command
    /// without a cgroup.
    pub fn cgroup_statistics(&self) -> Option<&Statistics> {
        self.cgroup.as_deref()?.final_statistics()
    }

    pub(crate) fn attach(&mut self, launched: Launched, timeout: Option<Duration>) {
        self.pid = launched.pid as u32;
        self.control = Some(launched.control);
        self.timeout = timeout;
    }

    /// The OS pid of the command's main process.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The program as it was given to [`crate::Command::new`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Waits until the command has exited **and every process of its tree is gone**, and
    /// returns the main process's exit status. Closes stdin first (as `std` does), so a
    /// command reading it can finish. Waiting again returns the same status.
    ///
    /// If the timeout fired, returns [`Error::TimedOut`] (with the status the stopped process
    /// ended with).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        while self.ended.is_none() {
            self.receive(true)?;
        }
        self.result()
    }

    /// Returns the status if the command (and its tree) has finished, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        while self.ended.is_none() {
            if !self.receive(false)? {
                return Ok(None);
            }
        }
        self.result().map(Some)
    }

    /// Stops the whole tree gracefully (SIGTERM to every process, `delay_to_sigkill`, then
    /// SIGKILL for what is left) and waits for it to be gone.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        self.request(Message::Terminate)?;
        self.wait()
    }

    /// SIGKILLs the whole tree at once. Like `std`'s `kill`, it does not wait: call
    /// [`Child::wait`] to reap the status.
    pub fn kill(&mut self) -> Result<()> {
        self.request(Message::Kill)
    }

    /// Sends `signal` (a signal number, e.g. `libc::SIGUSR1`) to the main process only.
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        self.request(Message::Signal(signal))
    }

    /// Lets the tree outlive this handle: the keeper stops watching the owner and only reaps.
    pub fn detach(mut self) {
        if self.ended.is_none() {
            let _ = self.request(Message::Detach);
        }
    }

    /// Waits asynchronously (tokio) for the command and its tree, like [`Child::wait`].
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        if self.ended.is_some() {
            return self.result();
        }
        let control = self.control.as_ref().ok_or(Error::KeeperLost)?;
        let dup = control
            .as_fd()
            .try_clone_to_owned()
            .map_err(Error::io("duplicating the control socket"))?;
        let afd = crate::sys::process::tokio_readable(dup)
            .map_err(Error::io("registering with tokio"))?;
        while self.ended.is_none() {
            let mut guard = afd
                .readable()
                .await
                .map_err(Error::io("waiting for the keeper"))?;
            if !self.receive(false)? {
                guard.clear_ready();
            }
        }
        drop(afd);
        self.result()
    }

    /// Asynchronous [`Child::terminate`].
    #[cfg(feature = "tokio")]
    pub async fn terminate_async(&mut self) -> Result<ExitStatus> {
        self.request(Message::Terminate)?;
        self.wait_async().await
    }

    fn request(&mut self, m: Message) -> Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        match &self.control {
            Some(c) => match c.send(m) {
                Ok(()) => Ok(()),
                // The keeper already finished and is reporting: the next receive gets it.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(Error::Io {
                    doing: "talking to the keeper",
                    source: e,
                }),
            },
            None => Err(Error::KeeperLost),
        }
    }

    /// Reads one message; returns false if none was pending (non-blocking mode).
    fn receive(&mut self, block: bool) -> Result<bool> {
        let control = self.control.as_ref().ok_or(Error::KeeperLost)?;
        match control.recv(block) {
            Ok(Some(Message::Exited(raw))) => {
                self.finish(raw, false);
                Ok(true)
            }
            Ok(Some(Message::TimedOut(raw))) => {
                self.finish(raw, true);
                Ok(true)
            }
            Ok(Some(Message::Statistics(stats))) => {
                if let Some(cg) = &self.cgroup {
                    cg.set_final_statistics(*stats);
                }
                Ok(true)
            }
            Ok(Some(_)) => Ok(true),
            Ok(None) => {
                self.control = None;
                Err(Error::KeeperLost)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(Error::Io {
                doing: "reading from the keeper",
                source: e,
            }),
        }
    }

    fn finish(&mut self, raw: i32, timed_out: bool) {
        self.ended = Some(Ended {
            status: ExitStatus::from_raw(raw),
            timed_out,
        });
        // The keeper has exited; nothing more will come.
        self.control = None;
    }

    fn result(&self) -> Result<ExitStatus> {
        let ended = self.ended.expect("called after the end");
        if ended.timed_out {
            Err(Error::TimedOut {
                timeout: self.timeout.unwrap_or_default(),
                status: ended.status,
            })
        } else {
            Ok(ended.status)
        }
    }

    /// Whether the command's timeout fired (known once it has been waited for).
    pub fn timed_out(&self) -> bool {
        self.ended.is_some_and(|e| e.timed_out)
    }
}

macro_rules! pipe_end {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name(File);

        impl From<OwnedFd> for $name {
            fn from(fd: OwnedFd) -> Self {
                $name(File::from(fd))
            }
        }

        impl From<$name> for OwnedFd {
            fn from(p: $name) -> OwnedFd {
                p.0.into()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }
    };
}

pipe_end!(
    ChildStdin,
    "The owner's (write) end of a command's stdin pipe."
);
pipe_end!(
    ChildStdout,
    "The owner's (read) end of a command's stdout pipe."
);
pipe_end!(
    ChildStderr,
    "The owner's (read) end of a command's stderr pipe."
);

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
