//! v2 `io` controller: `io.weight`, written as `default N` (the kernel shows it that way too,
//! which is why MuonTrap's plain-integer read-back never round-tripped).

use std::path::Path;

use crate::cgroup::limits::Limits;
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "io";

/// File writes for the io settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(w) = l.io_weight {
        out.push(Write::new(NAME, "io.weight", format!("default {w}")));
    }
}

/// Reads `io.weight` back from its `default N` line.
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.io_weight = fs::read_opt(dir, "io.weight").and_then(|t| {
        t.lines().find_map(|line| {
            let mut w = line.split_whitespace();
            match (w.next(), w.next()) {
                (Some("default"), Some(n)) => n.parse().ok(),
                (Some(n), None) => n.parse().ok(),
                _ => None,
            }
        })
    });
}
