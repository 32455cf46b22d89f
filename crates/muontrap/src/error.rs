//! The library's error type.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::engine::client::KeeperError;

/// Everything that can go wrong when spawning, waiting for or stopping a contained command.
///
/// Input errors (the first group) are detected before anything is spawned and leave nothing
/// behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program was not found (in `PATH`, or at the given path).
    #[error("program '{program}' not found")]
    ProgramNotFound {
        /// The program as given.
        program: String,
    },
    /// The program exists but cannot be executed (not a regular file, or no execute bit).
    #[error("'{}' is not executable", path.display())]
    NotExecutable {
        /// The resolved path.
        path: PathBuf,
    },
    /// An argument, the program, an environment entry or the directory contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which input.
        what: String,
    },
    /// An environment variable name is empty or contains `=`.
    #[error("invalid environment variable name '{name}'")]
    InvalidEnvName {
        /// The name.
        name: String,
    },
    /// No user with that name.
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    /// No group with that name.
    #[error("unknown group '{0}'")]
    UnknownGroup(String),
    /// uid or gid 0 was requested: muontrap never runs a command as root by request.
    #[error("refusing to set the {what} to root (0)")]
    RootRefused {
        /// "user", "group" or "supplementary group".
        what: &'static str,
    },
    /// The working directory does not exist or is not a directory.
    #[error("working directory '{}' is not usable", path.display())]
    BadDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The command failed after fork, before or during exec.
    #[error("'{program}' failed to start while {stage}")]
    Start {
        /// The program.
        program: String,
        /// The step that failed.
        stage: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The keeper could not be started or used.
    #[error(transparent)]
    Keeper(#[from] KeeperError),
    /// Setting up the command's cgroup failed (nothing was left behind).
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// The command's keeper vanished without reporting an exit (it was killed).
    #[error("the keeper of this command died unexpectedly")]
    KeeperLost,
    /// The command ran past its timeout and its tree was stopped.
    #[error("the command timed out after {}", humantime::format_duration(*timeout))]
    TimedOut {
        /// The configured timeout.
        timeout: Duration,
        /// How the main process ended when it was stopped.
        status: ExitStatus,
    },
    /// An I/O error on the owner's side (pipes, the control channel).
    #[error("I/O error while {doing}")]
    Io {
        /// What we were doing.
        doing: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(doing: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { doing, source }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
