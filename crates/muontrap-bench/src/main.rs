//! `muontrap-bench`: spawn latency, tree teardown and keeper memory of muontrap, against
//! `std::process`, `tokio::process`, process-wrap and processkit, and what a cgroup per
//! command costs. Prints markdown tables.
//!
//! ```text
//! cargo run --release -p muontrap-bench            # full run (well under 2 minutes)
//! cargo run --release -p muontrap-bench -- --quick # a few iterations (CI smoke)
//! ```
//!
//! Every process any measurement starts carries `MUONTRAP_TEST_ID=bench-<pid>-<n>` in its
//! environment; leftovers are found, counted and (for the libraries that leave some) killed
//! by that marker only.

mod cgroup;
mod helper;
mod memory;
mod procscan;
mod report;
mod spawn;
mod stats;
mod teardown;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Iteration counts.
pub struct Config {
    pub quick: bool,
    pub warmup: usize,
    pub iters: usize,
    pub block: usize,
    pub first_runs: usize,
    pub tree_iters: usize,
    pub fanout: usize,
    pub chain: usize,
    /// Size of the tree torn down in the cgroup section.
    pub cgroup_tree: usize,
}

static MARKERS: AtomicUsize = AtomicUsize::new(0);

/// A new marker value, `bench-<pid>-<n>`.
pub fn next_marker() -> String {
    let n = MARKERS.fetch_add(1, Ordering::Relaxed);
    format!("bench-{}-{n}", std::process::id())
}

fn usage() -> ! {
    eprintln!("usage: muontrap-bench [--quick]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: Option<&String>| {
        s.and_then(|s| s.parse::<usize>().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("__fanout") => helper::fanout(
            num(args.get(1)),
            args.get(2).map(String::as_str) == Some("ignore-term"),
        ),
        Some("__chain") => helper::chain(num(args.get(1))),
        Some("__first") => helper::first(args.get(1).map(String::as_str).unwrap_or("bench")),
        _ => {}
    }
    let quick = match args.as_slice() {
        [] => false,
        [q] if q == "--quick" => true,
        _ => usage(),
    };
    let cfg = if quick {
        Config {
            quick,
            warmup: 3,
            iters: 10,
            block: 10,
            first_runs: 2,
            tree_iters: 1,
            fanout: 500,
            chain: 200,
            cgroup_tree: 1000,
        }
    } else {
        Config {
            quick,
            warmup: 50,
            iters: 500,
            block: 25,
            first_runs: 15,
            tree_iters: 7,
            fanout: 500,
            chain: 200,
            cgroup_tree: 1000,
        }
    };

    // Orphans of the std / process-wrap trees come to us (not to an init that may not reap),
    // so that cleaning them up leaves no zombies.
    // SAFETY: plain prctl on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }

    let t0 = Instant::now();
    let spawn_rows = spawn::run(&cfg);
    let teardown_rows = teardown::run(&cfg);
    let memory_rows = memory::run();
    let cgroup_rows = cgroup::run(&cfg, cfg.cgroup_tree);
    let elapsed = t0.elapsed();

    println!(
        "## muontrap-bench{} — {} CPUs, Linux {}",
        if cfg.quick { " (--quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    print!(
        "{}",
        report::markdown(&[
            report::Section {
                title: &format!(
                    "1. spawn + wait of `/bin/true` ({} timed after {} warm-up)",
                    cfg.iters, cfg.warmup
                ),
                ratio_to: "std",
                rows: spawn_rows,
            },
            report::Section {
                title: &format!(
                    "2. tree teardown ({} trees per row; ratio against std killing the direct child)",
                    cfg.tree_iters
                ),
                ratio_to: "std",
                rows: teardown_rows,
            },
            report::Section {
                title: "3. owner-side memory while `sleep 1000` runs",
                ratio_to: "std",
                rows: memory_rows,
            },
            report::Section {
                title: &format!(
                    "4. cgroups: a fresh cgroup per command ({} spawns per row, round-robin, after {} warm-up) and teardown of a {}-process fan-out ({} trees per row); ratio against the same without a cgroup",
                    cfg.iters, cfg.warmup, cfg.cgroup_tree, cfg.tree_iters
                ),
                ratio_to: "no cgroup",
                rows: cgroup_rows,
            },
        ])
    );
    println!("\n(total run time {:.1} s)", elapsed.as_secs_f64());
}
