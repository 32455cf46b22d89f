//! `--stats` / `--stats-json`: a short usage summary of the command's tree at exit.
//!
//! Without cgroups the numbers come from `getrusage(RUSAGE_CHILDREN)` of the keeper, which
//! covers every process of the tree that was reaped (the keeper is a subreaper, so orphans are
//! reaped by it and counted). With a cgroup, its own accounting is added: peak memory of the
//! whole cgroup, total CPU time and OOM kills, read just before the cgroup was removed.

use std::io;
use std::path::Path;
use std::time::Duration;

use muontrap::cgroup::Statistics;
use muontrap::sys::process::children_usage;

/// Prints the summary on stderr (if `human`) and writes it as JSON to `json` (if given).
pub fn report(
    human: bool,
    json: Option<&Path>,
    wall: Duration,
    status: Option<i32>,
    cgroup: Option<&Statistics>,
) -> io::Result<()> {
    let u = children_usage()?;
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |n| n.to_string());
    let peak = cgroup.and_then(|c| c.memory_peak);
    let cpu_us = cgroup.and_then(|c| c.cpu_usage_usec);
    let oom = cgroup.and_then(|c| c.oom_kill);
    if human {
        eprintln!(
            "muontrap: wall {:.3}s, cpu user {:.3}s system {:.3}s, peak rss {} KiB (largest process)",
            wall.as_secs_f64(),
            u.user_us as f64 / 1e6,
            u.system_us as f64 / 1e6,
            u.max_rss_kib
        );
        if cgroup.is_some() {
            eprintln!(
                "muontrap: cgroup: peak memory {} KiB, cpu {}, oom kills {}",
                peak.map_or("?".to_string(), |b| (b / 1024).to_string()),
                cpu_us.map_or("?".to_string(), |us| format!("{:.3}s", us as f64 / 1e6)),
                oom.map_or("?".to_string(), |n| n.to_string()),
            );
        }
    }
    if let Some(path) = json {
        let status = status.map_or("null".to_string(), |s| s.to_string());
        let text = format!(
            "{{\"wall_seconds\":{:.6},\"cpu_user_seconds\":{:.6},\"cpu_system_seconds\":{:.6},\"peak_rss_kib\":{},\"oom_kills\":{},\"cgroup_peak_memory_bytes\":{},\"cgroup_cpu_usage_seconds\":{},\"wait_status\":{}}}\n",
            wall.as_secs_f64(),
            u.user_us as f64 / 1e6,
            u.system_us as f64 / 1e6,
            u.max_rss_kib,
            opt(oom),
            opt(peak),
            cpu_us.map_or("null".to_string(), |us| format!("{:.6}", us as f64 / 1e6)),
            status
        );
        std::fs::write(path, text)?;
    }
    Ok(())
}
