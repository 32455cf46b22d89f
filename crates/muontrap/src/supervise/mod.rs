//! Supervision with Erlang/OTP semantics: restartable, observable daemons in supervision trees.
//!
//! Two layers, kept apart on purpose:
//! - **policy** — plain data and functions, no processes, no clocks of their own:
//!   [`RestartPolicy`] × [`Reason`] (restart or not), [`RestartWindow`] (intensity),
//!   [`Strategy::plan`] (which siblings share a death), [`Backoff`] (how long to wait), and
//!   [`LineSplitter`] (bounded line splitting of output). Time and randomness are passed in,
//!   so every decision is unit-tested exhaustively without spawning anything.
//! - **machinery** (feature `tokio`) — `Daemon` (a contained command with logging, a
//!   readiness gate and statistics) and `Supervisor` (a tokio task per supervisor that
//!   applies the policy to real children, driven only by events: child exits arrive through
//!   the keepers' control sockets, commands through a channel; nothing polls while idle).

mod backoff;
mod intensity;
mod lines;
mod restart;
mod strategy;

pub use backoff::{Backoff, JitterSource, SplitMix64};
pub use intensity::{Exceeded, Intensity, RestartWindow};
pub use lines::LineSplitter;
pub use restart::{ExitKind, Reason, RestartPolicy};
pub use strategy::{RestartPlan, Sibling, Strategy};

#[cfg(feature = "tokio")]
pub mod blocking;
#[cfg(feature = "tokio")]
mod daemon;
mod error;

#[cfg(feature = "tokio")]
pub use daemon::{DEFAULT_MAX_LINE, Daemon, DaemonStatistics, Line, LogLevel, RunningDaemon};
pub use error::{BoxError, Error, Result};
#[cfg(feature = "tokio")]
mod event;
#[cfg(feature = "tokio")]
mod supervisor;

#[cfg(feature = "tokio")]
pub use event::{ChildExit, Event, Events};
#[cfg(feature = "tokio")]
pub use supervisor::{
    ChildInfo, ChildKind, ChildSpec, ChildState, DEFAULT_EVENTS_CAPACITY, RunningSupervisor,
    Supervisor,
};
