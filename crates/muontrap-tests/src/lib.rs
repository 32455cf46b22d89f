//! Test support for muontrap: the `mt-fixture` test subject and the tools
//! tests use to prove that processes are contained.
//!
//! The central idea: every process a test creates carries a unique
//! [`MARKER_VAR`] value in its environment ([`TestId`]). Descendants inherit
//! it however they escape (new process group, new session, reparenting), so
//! "nothing leaked" becomes a checkable fact: [`wait_until_gone`] finds no
//! process with the marker in `/proc`. Tests wait on conditions (a `ready`
//! line via [`wait_for_line`], a count via [`wait_for_count`]), never on
//! fixed sleeps.
//!
//! Modules, one concern each:
//! - [`marker`]: [`TestId`], finding marked processes, waiting for them.
//! - [`proc_scan`]: [`ProcInfo`] and `/proc` scans of children, fds, threads.
//! - [`lines`]: [`wait_for_line`], reading a child's output with a deadline.
//! - [`binaries`]: [`fixture`] and the paths of other built binaries.
//! - [`skip`](mod@skip): [`skip()`], visible skips that fail under `MUONTRAP_STRICT=1`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod binaries;
pub mod lines;
pub mod marker;
pub mod port;
pub mod proc_scan;
pub mod skip;

pub use binaries::{FIXTURE_NAME, example_binary, fixture, target_binary};
pub use lines::wait_for_line;
pub use marker::{MARKER_VAR, TestId, marked_processes, wait_for_count, wait_until_gone};
pub use port::{encode_acks, readable, wait_until};
pub use proc_scan::{
    ProcInfo, children_of, open_fds, process, sigkill_keeper_of, thread_count, zombies_of,
};
pub use skip::{IN_VM_VAR, STRICT_VAR, V2_IN_VM_VAR, skip, skip_needs_v1, skip_needs_v2};
