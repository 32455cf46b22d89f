//! Errors of daemons and supervisors.

use std::time::Duration;

/// An error from a readiness check or a line handler: anything the application returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when starting, stopping or managing supervised children.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon's command could not be spawned.
    #[error("daemon '{daemon}' could not start")]
    Start {
        /// The daemon's name.
        daemon: String,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// The daemon's readiness check (`wait_for`) failed, so it was not launched.
    #[error("daemon '{daemon}' is not ready to launch")]
    NotReady {
        /// The daemon's name.
        daemon: String,
        /// What the check returned.
        #[source]
        source: BoxError,
    },
    /// The readiness check did not pass in time.
    #[error("daemon '{daemon}': readiness check still pending after {}", humantime::format_duration(*timeout))]
    ReadinessTimeout {
        /// The daemon's name.
        daemon: String,
        /// The limit.
        timeout: Duration,
    },
    /// Waiting for or stopping the daemon's process failed (its keeper vanished).
    #[error("lost track of daemon '{daemon}'")]
    Lost {
        /// The daemon's name.
        daemon: String,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// A child failed to start, so the operation (or the supervisor's start) failed.
    #[error("child '{id}' failed to start")]
    ChildStart {
        /// The child's id.
        id: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The blocking facade could not start its background runtime.
    #[error("cannot start the supervisor's runtime thread")]
    Runtime(#[source] std::io::Error),
    /// No child has this id.
    #[error("no child '{0}'")]
    NoSuchChild(String),
    /// A child with this id exists already.
    #[error("a child '{0}' exists already")]
    DuplicateChild(String),
    /// The child is running; stop it first (`restart_child`, `delete_child`).
    #[error("child '{0}' is running")]
    ChildRunning(String),
    /// The restart intensity was exceeded: the supervisor stopped all its children and failed.
    #[error(
        "restart intensity exceeded by child '{child}': {restarts} restarts within {}",
        humantime::format_duration(*period)
    )]
    GaveUp {
        /// The child whose exit exceeded it.
        child: String,
        /// Restarts counted.
        restarts: u32,
        /// The window.
        period: Duration,
    },
    /// The supervisor is no longer running.
    #[error("the supervisor has stopped")]
    SupervisorGone,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
