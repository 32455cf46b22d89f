//! `spawn_loop N PROGRAM [ARGS]`: spawn+wait PROGRAM N times through muontrap and print the
//! mean latency. A quick profiling aid (`strace -f`, `perf`); benchmarks live in
//! `crates/muontrap-bench`.
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let program = args.next().unwrap_or_else(|| "/bin/true".into());
    let rest: Vec<String> = args.collect();
    // The first spawn starts the keeper server; leave it out of the mean.
    let _ = muontrap::Command::new(&program).args(&rest).status();
    let start = Instant::now();
    for _ in 0..n {
        let status = muontrap::Command::new(&program).args(&rest).status();
        assert!(status.is_ok(), "{status:?}");
    }
    println!("mean {:?} per spawn+wait", start.elapsed() / n.max(1));
}
