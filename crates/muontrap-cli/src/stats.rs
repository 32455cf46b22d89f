//! `--stats` / `--stats-json`: a short usage summary of the command's tree at exit.
//!
//! Without cgroups the numbers come from `getrusage(RUSAGE_CHILDREN)` of the keeper, which
//! covers every process of the tree that was reaped (the keeper is a subreaper, so orphans are
//! reaped by it and counted).

use std::io;
use std::path::Path;
use std::time::Duration;

use muontrap::sys::process::children_usage;

/// Prints the summary on stderr (if `human`) and writes it as JSON to `json` (if given).
pub fn report(
    human: bool,
    json: Option<&Path>,
    wall: Duration,
    status: Option<i32>,
) -> io::Result<()> {
    let u = children_usage()?;
    if human {
        eprintln!(
            "muontrap: wall {:.3}s, cpu user {:.3}s system {:.3}s, peak rss {} KiB (largest process)",
            wall.as_secs_f64(),
            u.user_us as f64 / 1e6,
            u.system_us as f64 / 1e6,
            u.max_rss_kib
        );
    }
    if let Some(path) = json {
        let status = status.map_or("null".to_string(), |s| s.to_string());
        let text = format!(
            "{{\"wall_seconds\":{:.6},\"cpu_user_seconds\":{:.6},\"cpu_system_seconds\":{:.6},\"peak_rss_kib\":{},\"oom_kills\":null,\"wait_status\":{}}}\n",
            wall.as_secs_f64(),
            u.user_us as f64 / 1e6,
            u.system_us as f64 / 1e6,
            u.max_rss_kib,
            status
        );
        std::fs::write(path, text)?;
    }
    Ok(())
}
