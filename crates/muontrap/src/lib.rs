//! # muontrap
//!
//! Keep OS processes contained: a command started through muontrap, and **every process it
//! starts** (double-forked, `setsid`'d, SIGTERM-ignoring), dies when its owner lets go of it —
//! when the [`Child`] handle is dropped, when the owner panics or exits, and when the owner is
//! SIGKILLed.
//!
//! ```
//! use std::time::Duration;
//! use muontrap::Command;
//!
//! // A shell that leaves a background job behind.
//! let mut child = Command::new("sh")
//!     .args(["-c", "sleep 60 & echo started"])
//!     .stdout(muontrap::Stdio::piped())
//!     .delay_to_sigkill(Duration::from_millis(100))
//!     .spawn()?;
//! // `wait` returns once the shell has exited *and* its background `sleep` is gone.
//! let status = child.wait()?;
//! assert!(status.success());
//! # Ok::<(), muontrap::Error>(())
//! ```
//!
//! How it works: every command runs under a *keeper*, a small single-threaded process that is
//! a child subreaper (orphans of the tree are re-parented to it, so nothing can escape by
//! double-forking), holds a socket to the owner as its lifeline, and stops the whole tree
//! (SIGTERM, a grace period, SIGKILL) when the lifeline breaks. Keepers are forked from one
//! keeper server per owner process, which is the owner's own executable re-exec'd, so there is
//! nothing to install and the owner itself never forks. See `docs/design.md`.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod async_pipe;
pub mod cgroup;
mod child;
mod command;
pub mod engine;
mod error;
mod output;
pub mod supervise;
pub mod sys;

#[cfg(feature = "tokio")]
pub use async_pipe::AsyncPipe;
pub use child::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use command::{Command, DEFAULT_DELAY_TO_SIGKILL, Group, Stdio, User, find_program};
pub use error::{Error, Result};
pub use output::{Outcome, Output, Stream, cmd};
