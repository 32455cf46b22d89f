//! The engine: what "contained" means, written once for every face.
//!
//! - [`keeper`]: the process that owns one command tree (spawn, reap, stop sequence);
//! - [`spec`]: a resolved command and its wire form;
//! - [`control`]: the owner ↔ keeper channel, which doubles as the lifeline;
//! - [`server`] / [`client`]: how the library starts keepers without forking the owner.

pub mod client;
pub mod control;
pub mod keeper;
pub mod server;
pub mod spec;
pub mod watch;
