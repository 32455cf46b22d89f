//! v1 `blkio` controller: `blkio.weight` (10–1000) from io_weight (1–10000), converted the
//! way runc converts between the two ranges.

use std::path::Path;

use crate::cgroup::limits::Limits;
use crate::cgroup::{Write, fs};

/// The controller's name.
pub const NAME: &str = "blkio";

/// io.weight → blkio.weight.
pub fn blkio_of_weight(w: u16) -> u64 {
    10 + (u64::from(w.max(1)) - 1) * 990 / 9_999
}

/// blkio.weight → io.weight (rounded up so a round trip is exact).
pub fn weight_of_blkio(b: u64) -> u16 {
    let b = b.clamp(10, 1000);
    (1 + ((b - 10) * 9_999).div_ceil(990)) as u16
}

/// File writes for the blkio settings.
pub fn apply(l: &Limits, out: &mut Vec<Write>) {
    if let Some(w) = l.io_weight {
        out.push(Write::new(
            NAME,
            "blkio.weight",
            blkio_of_weight(w).to_string(),
        ));
    }
}

/// Reads `blkio.weight` back.
pub fn read_back(dir: &Path, l: &mut Limits) {
    l.io_weight = fs::read_u64(dir, "blkio.weight").map(weight_of_blkio);
}
