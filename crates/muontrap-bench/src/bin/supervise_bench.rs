//! `supervise_bench [N] [RESTARTS]`: N daemons (`sleep`) under one supervisor.
//!
//! Measures, for the owner process (the supervisor's):
//! - RSS per daemon (VmRSS after all started minus before, divided by N);
//! - idle cost: CPU time (utime + stime from /proc/self/stat) and context switches
//!   (voluntary + involuntary, summed over /proc/self/task/*/status) while the runtime sits
//!   idle for 3 s with N daemons running — zero polling means ~0 of both;
//! - restart latency: SIGKILL a daemon's pid → its `Started` event with the new pid, through
//!   the event stream, RESTARTS times (p50/p90/max);
//! - time to start all N and to shut all N down (reverse order, every tree gone).
//!
//! Prints a markdown table. Run with `cargo run --release -p muontrap-bench --bin
//! supervise_bench -- 1000 200`.

use std::time::{Duration, Instant};

use muontrap::Command;
use muontrap::supervise::{Daemon, Event, Events, Supervisor};

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches of every thread of this process.
fn ctxt_switches() -> u64 {
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            for l in s.lines() {
                if let Some(v) = l
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    total
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn started(events: &mut Events, want: &str) -> u32 {
    loop {
        match events.recv().await {
            Some(Event::Started { id, pid: Some(pid) }) if id == want => return pid,
            Some(_) => {}
            None => panic!("supervisor stopped"),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let restarts: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let rss_before = status_kib("VmRSS:");
    let mut sup = Supervisor::new();
    sup.intensity(u32::MAX, Duration::from_secs(1))
        .events_capacity(4 * n + 4 * restarts + 16);
    for i in 0..n {
        let mut d = Daemon::new(format!("d{i}"), || {
            let mut c = Command::new("sleep");
            c.arg("100000");
            c
        });
        d.shutdown_timeout(Duration::from_millis(500));
        sup.child(format!("d{i}"), d);
    }
    let t = Instant::now();
    let running = rt.block_on(sup.start()).expect("start");
    let start_all = t.elapsed();
    let rss_after = status_kib("VmRSS:");
    let mut events = running.subscribe();

    // Idle: the runtime parks in epoll with N keeper sockets registered.
    let (cpu0, cs0) = (cpu_ticks(), ctxt_switches());
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    let (cpu1, cs1) = (cpu_ticks(), ctxt_switches());
    // /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 for user space.
    let ticks_per_s = 100.0;
    let idle_cpu_ms = (cpu1 - cpu0) as f64 / ticks_per_s * 1e3;

    // Restart latency: kill -9 → Started with a new pid, observed on the event stream.
    let mut lat = Vec::with_capacity(restarts);
    rt.block_on(async {
        // Skip the initial start events.
        while events.try_recv().is_some() {}
        for k in 0..restarts {
            let id = format!("d{}", (k * 7919) % n);
            let pid = running.os_pid(&id).await.expect("pid").expect("running");
            let t = Instant::now();
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).expect("pid"),
                rustix::process::Signal::KILL,
            )
            .expect("kill");
            let new = started(&mut events, &id).await;
            lat.push(t.elapsed());
            assert_ne!(new, pid);
        }
    });
    lat.sort();

    let t = Instant::now();
    rt.block_on(running.shutdown()).expect("shutdown");
    let shutdown_all = t.elapsed();

    let per_daemon_kib = (rss_after.saturating_sub(rss_before)) as f64 / n as f64;
    println!("| metric ({n} daemons, `sleep`, one current-thread supervisor) | value |");
    println!("|---|---|");
    println!("| start all {n} (in order) | {} |", ms(start_all));
    println!(
        "| owner RSS before → after start | {} KiB → {} KiB |",
        rss_before, rss_after
    );
    println!("| owner RSS per daemon | {per_daemon_kib:.1} KiB |");
    println!(
        "| owner CPU while idle 3 s | {idle_cpu_ms:.0} ms ({} ticks) |",
        cpu1 - cpu0
    );
    println!("| owner context switches while idle 3 s | {} |", cs1 - cs0);
    println!(
        "| restart latency kill -9 → new pid event, p50 ({restarts} runs) | {} |",
        ms(percentile(&lat, 0.5))
    );
    println!("| restart latency p90 | {} |", ms(percentile(&lat, 0.9)));
    println!("| restart latency max | {} |", ms(percentile(&lat, 1.0)));
    println!(
        "| shutdown all {n} (reverse order, trees gone) | {} |",
        ms(shutdown_all)
    );
}
