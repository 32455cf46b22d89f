//! Lifecycle events of a supervisor's children, delivered through a broadcast channel.
//!
//! Applications react to them (alerting on `GaveUp`); tests wait on them instead of sleeping.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::sync::broadcast;

use super::restart::Reason;

/// How a child's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// The daemon's process ended with this status (its whole tree is gone).
    Status(ExitStatus),
    /// The daemon could not be launched (spawn error, readiness check failed).
    StartFailed,
    /// The daemon's keeper vanished without reporting (it was killed).
    Lost,
    /// A nested supervisor gave up (restart intensity exceeded).
    SupervisorFailed,
    /// A nested supervisor was shut down.
    SupervisorStopped,
    /// Stopped while waiting to be (re)started: it never ran.
    NotStarted,
}

impl ChildExit {
    /// The exit status, for a daemon's process.
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            ChildExit::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// Something that happened under a supervisor.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A child was launched (`pid` is the command's; `None` for a nested supervisor).
    Started {
        /// The child's id.
        id: String,
        /// The OS pid.
        pid: Option<u32>,
    },
    /// A child could not be launched.
    StartFailed {
        /// The child's id.
        id: String,
        /// The error, as text.
        error: String,
    },
    /// A child ended on its own.
    Exited {
        /// The child's id.
        id: String,
        /// How.
        exit: ChildExit,
        /// What that means for its restart policy.
        reason: Reason,
    },
    /// A child was stopped by the supervisor (a request, a strategy, shutdown).
    Stopped {
        /// The child's id.
        id: String,
        /// How its run ended.
        exit: ChildExit,
    },
    /// A child will be started again after `delay`.
    Restarting {
        /// The child's id.
        id: String,
        /// Consecutive restart number (1 = first since it was last healthy).
        attempt: u32,
        /// The backoff delay (zero without backoff).
        delay: Duration,
    },
    /// The restart intensity was exceeded: every child is being stopped and the supervisor
    /// fails.
    GaveUp {
        /// The child whose exit exceeded it.
        id: String,
        /// Restarts within the window.
        restarts: u32,
        /// The window.
        period: Duration,
    },
    /// The supervisor has stopped; no more events follow.
    SupervisorStopped {
        /// False if it gave up.
        normal: bool,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A subscription to a supervisor's [`Event`]s.
#[derive(Debug)]
pub struct Events(pub(crate) broadcast::Receiver<Event>);

impl Events {
    /// The next event; `None` once the supervisor is gone and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.0.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is pending.
    pub fn try_recv(&mut self) -> Option<Event> {
        match self.0.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(_) => None,
        }
    }

    /// [`Events::recv`] for blocking code (not inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        match self.0.blocking_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
