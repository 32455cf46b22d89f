//! Many owners' threads at once: spawning from several threads while others churn the
//! allocator, and many handles dropped at the same moment. Afterwards the process is as it
//! was: same descriptors, same thread count, no zombie children, nothing marked left.
//!
//! The tests look at process-wide state, so they take [`ALONE`] and never overlap.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Grace period of the dropped trees (they ignore SIGTERM, so teardown takes at least this).
const GRACE: Duration = Duration::from_secs(2);

use muontrap::{Command, Stdio};
use muontrap_tests::{
    MARKER_VAR, TestId, fixture, marked_processes, open_fds, thread_count, wait_for_count,
    wait_for_line, wait_until_gone, zombies_of,
};

static ALONE: Mutex<()> = Mutex::new(());

/// Generous: only reached when something is broken.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_millis(200);

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixture_command(id: &TestId, args: &[&str]) -> Command {
    let mut cmd = Command::new(fixture());
    cmd.args(args)
        .env(MARKER_VAR, id.as_str())
        .stdin(Stdio::null())
        .delay_to_sigkill(DELAY);
    cmd
}

/// Waits until the thread count is back to `expected`: a joined thread has left user space,
/// but the kernel drops it from the count a moment later.
fn wait_for_thread_count(expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = thread_count();
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} threads, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn two_hundred_commands_from_eight_threads_amid_allocator_churn() {
    let _alone = alone();
    let id = TestId::new("concurrent");
    // The first spawn starts the keeper server, which keeps one descriptor: not a leak.
    assert!(
        fixture_command(&id, &["exit", "0"])
            .status()
            .expect("warm-up")
            .success()
    );
    let fds_before = open_fds();
    let threads_before = thread_count();

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for n in 0..4u8 {
            let stop = &stop;
            s.spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    keep.push(vec![n; 512 + 97 * keep.len()]);
                    if keep.len() > 200 {
                        keep.clear();
                    }
                    std::thread::yield_now();
                }
            });
        }
        let spawners: Vec<_> = (0..8)
            .map(|t| {
                let id = &id;
                s.spawn(move || {
                    for k in 0..25 {
                        let code = (t * 25 + k) % 100;
                        let code_arg = code.to_string();
                        // Alternate the faces: captured output, and spawn + wait.
                        if k % 2 == 0 {
                            let out = fixture_command(id, &["exit", &code_arg])
                                .output()
                                .expect("output");
                            let status = out.outcome.status().expect("no timeout");
                            assert_eq!(status.code(), Some(code));
                        } else {
                            let status = fixture_command(id, &["exit", &code_arg])
                                .stdout(Stdio::null())
                                .spawn()
                                .expect("spawn")
                                .wait()
                                .expect("wait");
                            assert_eq!(status.code(), Some(code));
                        }
                    }
                })
            })
            .collect();
        for spawner in spawners {
            if let Err(panic) = spawner.join() {
                stop.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(panic);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });

    assert_eq!(open_fds(), fds_before, "descriptors before and after");
    wait_for_thread_count(threads_before);
    let zombies = zombies_of(std::process::id() as i32);
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
    let left = marked_processes(&id);
    assert!(left.is_empty(), "marked processes left: {left:?}");
}

#[test]
fn fifty_handles_dropped_at_once_stop_every_tree() {
    let _alone = alone();
    let id = TestId::new("drop-50");
    // 50 commands of 3 processes each, spawned from 10 threads at once.
    let children: Vec<muontrap::Child> = std::thread::scope(|s| {
        let spawners: Vec<_> = (0..10)
            .map(|_| {
                let id = &id;
                s.spawn(move || {
                    (0..5)
                        .map(|_| {
                            let child = fixture_command(id, &["tree", "2", "--ignore-term"])
                                .delay_to_sigkill(GRACE)
                                .stdout(Stdio::piped())
                                .spawn()
                                .expect("spawn");
                            let stdout = child.stdout.as_ref().expect("piped");
                            wait_for_line(stdout, "ready", SETUP_TIMEOUT).expect("ready");
                            child
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        spawners
            .into_iter()
            .flat_map(|h| h.join().expect("spawner"))
            .collect()
    });
    assert_eq!(children.len(), 50);
    assert_eq!(wait_for_count(&id, 150, SETUP_TIMEOUT), Ok(150));
    let start = Instant::now();
    drop(children);
    let dropped_in = start.elapsed();
    // The trees ignore SIGTERM, so stopping them takes the whole grace period: a drop that
    // waited for the teardown could not return before it.
    assert!(
        dropped_in < GRACE,
        "dropping waited for the teardown: {dropped_in:?}"
    );
    if let Err(left) = wait_until_gone(&id, GRACE + Duration::from_millis(1500)) {
        panic!(
            "{} processes left 1.5 s after the grace period: {left:?}",
            left.len()
        );
    }
}
