//! `supervise_two`: two cooperating daemons under one supervisor.
//!
//! A "clock" daemon appends a timestamp to a log file every 200 ms; a "reader" daemon follows
//! that file with `tail -f` and prints what it reads. The reader has a readiness gate
//! (`wait_for`): it launches only once the clock's file exists. The strategy is
//! `RestForOne`: the reader depends on the clock, so when the clock dies the reader is
//! restarted after it. Halfway through, the example kills the clock with SIGKILL to show
//! that. Then it shuts down in reverse start order (reader, clock) and every process is gone
//! when `shutdown` returns.
//!
//! Run: `cargo run --example supervise_two` (`SUPERVISE_TWO_MS` sets the run time, default 2000).

use std::path::PathBuf;
use std::time::Duration;

use muontrap::Command;
use muontrap::supervise::{Daemon, Strategy, Supervisor};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ms: u64 = std::env::var("SUPERVISE_TWO_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("supervise-two-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log: PathBuf = dir.join("clock.log");
    let _ = std::fs::remove_file(&log);

    let clock_log = log.clone();
    let mut clock = Daemon::new("clock", move || {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "while true; do date +%T.%N >> \"$LOG\"; sleep 0.2; done",
        ])
        .env("LOG", &clock_log);
        c
    });
    clock.shutdown_timeout(Duration::from_millis(200));

    let reader_log = log.clone();
    let gate_log = log.clone();
    let mut reader = Daemon::new("reader", move || {
        let mut c = Command::new("tail");
        c.args(["-n", "0", "-F"]).arg(&reader_log);
        c
    });
    reader
        .wait_for(move || {
            let path = gate_log.clone();
            async move {
                while !path.exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<(), std::io::Error>(())
            }
        })
        .wait_for_timeout(Duration::from_secs(5))
        .on_line(|line| {
            println!(
                "{:>6} | {}",
                line.daemon,
                String::from_utf8_lossy(line.bytes)
            )
        });

    let mut sup = Supervisor::new();
    sup.strategy(Strategy::RestForOne)
        .child("clock", clock)
        .child("reader", reader);
    let running = sup.start().await?;
    let mut events = running.subscribe();

    let half = tokio::time::sleep(Duration::from_millis(ms / 2));
    tokio::pin!(half);
    let end = tokio::time::sleep(Duration::from_millis(ms));
    tokio::pin!(end);
    let mut killed = false;
    loop {
        tokio::select! {
            Some(e) = events.recv() => println!("  event | {e:?}"),
            _ = &mut half, if !killed => {
                killed = true;
                if let Some(pid) = running.os_pid("clock").await? {
                    println!("  demo  | SIGKILL the clock (pid {pid}); the reader restarts after it");
                    rustix::process::kill_process(
                        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
                        rustix::process::Signal::KILL,
                    )?;
                }
            }
            _ = &mut end => break,
        }
    }
    running.shutdown().await?;
    while let Some(e) = events.try_recv() {
        println!("  event | {e:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("both trees are gone");
    Ok(())
}
