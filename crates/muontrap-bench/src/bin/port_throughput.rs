//! Port-mode throughput and keeper memory.
//!
//! Streams `SIZE` bytes (`head -c SIZE /dev/zero`) to this process three ways and reports
//! MB/s: straight through a pipe, through `cat` (one relay process, like any pipe stage), and
//! through `muontrap --capture-output --stdio-window 65536` acting as an Erlang port would
//! (every chunk acknowledged as soon as it is read). While the port run streams, it samples
//! the helper's RSS.
//!
//! Needs the release CLI: `cargo build --release -p muontrap-cli` first; then
//! `cargo run --release -p muontrap-bench --bin port_throughput [SIZE_MB] [ROUNDS]`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn muontrap_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let path = exe.with_file_name("muontrap");
    assert!(
        path.exists(),
        "{} missing: run `cargo build --release -p muontrap-cli` first",
        path.display()
    );
    path
}

fn marker() -> String {
    format!("bench-port-{}", std::process::id())
}

/// Reads everything from `r`; returns (bytes, elapsed, peak VmRSS of `sample` in KiB, if
/// given, read every 256 reads).
fn drain(mut r: impl Read, start: Instant, sample: Option<u32>) -> (u64, Duration, u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut reads = 0u64;
    let mut max_rss = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
        reads += 1;
        if let Some(pid) = sample.filter(|_| reads % 256 == 1) {
            max_rss = max_rss.max(rss_kib(pid));
        }
    }
    (total, start.elapsed(), max_rss)
}

fn plain(size: u64) -> (u64, Duration) {
    let start = Instant::now();
    let mut child = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/zero"])
        .env("MUONTRAP_TEST_ID", marker())
        .stdout(Stdio::piped())
        .spawn()
        .expect("head");
    let (bytes, elapsed, _) = drain(child.stdout.take().expect("piped"), start, None);
    child.wait().expect("wait");
    (bytes, elapsed)
}

/// `head -c SIZE /dev/zero | cat`, read here; also returns `cat`'s peak VmRSS: the memory of a
/// C relay process on this machine, the yardstick for the port helper's.
fn through_cat(size: u64) -> (u64, Duration, u64) {
    let start = Instant::now();
    let mut head = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/zero"])
        .env("MUONTRAP_TEST_ID", marker())
        .stdout(Stdio::piped())
        .spawn()
        .expect("head");
    let mut cat = Command::new("cat")
        .env("MUONTRAP_TEST_ID", marker())
        .stdin(head.stdout.take().expect("piped"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let r = drain(cat.stdout.take().expect("piped"), start, Some(cat.id()));
    head.wait().expect("wait");
    cat.wait().expect("wait");
    r
}

/// The Erlang side's ack encoding: floor(n/256) bytes of 0xFF, then (n mod 256) - 1.
fn encode_acks(n: usize, out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0xFF, n / 256));
    if !n.is_multiple_of(256) {
        out.push((n % 256 - 1) as u8);
    }
}

fn port(size: u64, window: usize) -> (u64, Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(muontrap_binary())
        .args([
            "--capture-output",
            "--stdio-window",
            &window.to_string(),
            "--",
        ])
        .args(["head", "-c", &size.to_string(), "/dev/zero"])
        .env("MUONTRAP_TEST_ID", marker())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("muontrap");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut acks = Vec::with_capacity(512);
    let mut total = 0u64;
    let mut max_rss = 0u64;
    let mut reads = 0u64;
    loop {
        // Not `drain`: every chunk is acknowledged before the next read, as the Erlang VM does.
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        };
        total += n as u64;
        acks.clear();
        encode_acks(n, &mut acks);
        let _ = stdin.write_all(&acks);
        reads += 1;
        if reads % 256 == 1 {
            max_rss = max_rss.max(rss_kib(pid));
        }
    }
    let elapsed = start.elapsed();
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success(), "muontrap exited with {status}");
    (total, elapsed, max_rss)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let size = size_mb << 20;
    let window: usize = std::env::var("WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(64 * 1024);
    let mb = |bytes: u64, d: Duration| bytes as f64 / (1 << 20) as f64 / d.as_secs_f64();
    let (mut p, mut c, mut m, mut rss, mut cat_rss) = (vec![], vec![], vec![], 0, 0);
    for _ in 0..rounds {
        let (b, d) = plain(size);
        assert_eq!(b, size);
        p.push(mb(b, d));
        let (b, d, r) = through_cat(size);
        assert_eq!(b, size);
        c.push(mb(b, d));
        cat_rss = cat_rss.max(r);
        let (b, d, r) = port(size, window);
        assert_eq!(b, size, "port mode lost output");
        m.push(mb(b, d));
        rss = rss.max(r);
    }
    let (p, c, m) = (median(p), median(c), median(m));
    println!(
        "**port-mode throughput — {size_mb} MiB per run, median of {rounds} rounds, window {window} bytes, acks sent at once**\n"
    );
    println!("| path | MB/s | ratio to plain pipe | ratio to `cat` |");
    println!("|---|---:|---:|---:|");
    println!(
        "| plain pipe (`head -c` → reader) | {p:.0} | 1.00× | {:.2}× |",
        p / c
    );
    println!("| through `cat` | {c:.0} | {:.2}× | 1.00× |", c / p);
    println!(
        "| through `muontrap --capture-output` (port protocol) | {m:.0} | {:.2}× | {:.2}× |",
        m / p,
        m / c
    );
    println!("\n| process, peak VmRSS while streaming | KiB | ratio to `cat` |");
    println!("|---|---:|---:|");
    println!("| `cat` (C, glibc, dynamically linked) | {cat_rss} | 1.00× |");
    println!(
        "| `muontrap` port helper (target ≤ 1536; the C helper: about 1.2 MB elsewhere) | {rss} | {:.2}× |",
        rss as f64 / cat_rss.max(1) as f64
    );
}
