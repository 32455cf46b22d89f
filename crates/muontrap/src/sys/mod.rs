//! The Linux layer: every system call muontrap makes that needs `unsafe` or a raw
//! descriptor lives here, typed and documented, without policy. The engine above decides what
//! to do; this layer only knows how.
#![allow(unsafe_code)]

pub mod accounts;
pub mod exec;
pub mod fdpass;
pub mod hook;
pub mod proc_tree;
pub mod process;
pub mod signals;
